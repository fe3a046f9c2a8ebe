// The operator pages' SignalR client (web/operator/signalr-lite.js) against the real admin hub, run in
// Node with its WebSocket (Node 22, or Node 20 with --experimental-websocket; skipped otherwise). The
// pages themselves get a browser test (Playwright) later.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, MASTER_KEY, waitFor } from "./harness.js";

const hasWebSocket = typeof WebSocket === "function";
let server;
let HubClient;

before(async () => {
  if (!hasWebSocket) return;
  server = await startServer();
  const url = new URL(server.url);
  globalThis.location = { protocol: url.protocol, host: url.host };
  ({ HubClient } = await import("../../web/operator/signalr-lite.js"));
});
after(async () => {
  await server?.stop();
});

test("the pages' client connects with the master key, calls methods and receives events", { skip: !hasWebSocket && "no WebSocket in this Node" }, async () => {
  await assert.rejects(new HubClient("/hubs/admin-notifications", "wrong").start());

  const hub = new HubClient("/hubs/admin-notifications", MASTER_KEY);
  const events = [];
  for (const name of ["InitialProviderHealth", "SubscribedToVirtualKey", "VirtualKeyCreated", "ProviderHealthRefreshed", "Error"]) {
    hub.on(name, (arg) => events.push({ name, arg }));
  }
  await hub.start();
  await waitFor(() => events.find((e) => e.name === "InitialProviderHealth"), "InitialProviderHealth");

  const res = await fetch(`${server.url}/api/virtualkeys`, {
    method: "POST",
    headers: { "X-API-Key": MASTER_KEY, "content-type": "application/json" },
    body: JSON.stringify({ keyName: "from-the-console" }),
  });
  const { keyInfo } = await res.json();
  await waitFor(() => events.find((e) => e.name === "VirtualKeyCreated" && e.arg.id === keyInfo.id), "VirtualKeyCreated");
  assert.equal(await hub.invoke("SubscribeToVirtualKey", keyInfo.id), undefined);
  await waitFor(() => events.find((e) => e.name === "SubscribedToVirtualKey"), "SubscribedToVirtualKey");
  await hub.invoke("RefreshProviderHealth");
  await waitFor(() => events.find((e) => e.name === "ProviderHealthRefreshed"), "ProviderHealthRefreshed");
  await assert.rejects(hub.invoke("NoSuchMethod"), /Method does not exist/);

  const closed = new Promise((resolve) => (hub.onclose = resolve));
  hub.stop();
  assert.equal(await closed, undefined);
});
