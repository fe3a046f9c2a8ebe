// The navigation-state hub (/hubs/navigation-state) with the official client: no credential, but only
// from allowed networks (loopback by default); state requests; provider health changes pushed as
// NavigationStateUpdate to everyone and as ModelUpdate to the followers of that provider's models, with a
// ModelAvailabilityChanged update when the provider's models become unavailable (Unhealthy) or available again.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, builder, MASTER_KEY, waitFor, assertNoLeaks, sleep } from "./harness.js";

const HUB = "/hubs/navigation-state";
let server;

before(async () => {
  server = await startServer({ env: { SWITCHYARD__REDIS__KEY_PREFIX: `sy-node-nav-${process.pid}-${Date.now()}` } });
});
after(async () => {
  await server?.stop();
});

async function nav(srv, transport = "WebSockets") {
  const connection = builder(`${srv.url}${HUB}`, { transport }).build();
  const events = [];
  for (const name of ["StateUpdateRequested", "NavigationStateUpdate", "ModelUpdate"]) {
    connection.on(name, (arg) => events.push({ name, arg }));
  }
  await connection.start();
  const find = (name, pred = () => true) => events.find((e) => e.name === name && pred(e.arg));
  return { connection, events, find, next: (name, pred) => waitFor(() => find(name, pred), name).then((e) => e.arg) };
}

async function report(status) {
  const res = await fetch(`${server.url}/api/providers/simulated/health`, {
    method: "POST",
    headers: { "X-API-Key": MASTER_KEY, "content-type": "application/json" },
    body: JSON.stringify({ status }),
  });
  assert.equal(res.status, 200);
}

test("loopback connects without a credential and may request the current state", async () => {
  for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
    const n = await nav(server, transport);
    await n.connection.invoke("RequestCurrentState");
    const requested = await n.next("StateUpdateRequested");
    assert.ok(!Number.isNaN(Date.parse(requested.timestamp)), JSON.stringify(requested));
    await n.connection.stop();
  }
});

test("provider health changes reach everyone; ModelUpdate only the followers of its models", async () => {
  const follower = await nav(server);
  const bystander = await nav(server, "ServerSentEvents");
  await follower.connection.invoke("SubscribeToModel", "sim-image");
  await follower.connection.invoke("SubscribeToModel", "sim-video");
  await report("Degraded");
  for (const n of [follower, bystander]) {
    const update = await n.next("NavigationStateUpdate", (u) => u.data.status === "Degraded");
    assert.equal(update.type, "ProviderHealthChanged");
    assert.equal(update.data.provider, "simulated");
    assert.ok(!Number.isNaN(Date.parse(update.data.timestamp)));
  }
  const model = await follower.next("ModelUpdate", (u) => u.data.status === "Degraded");
  assert.equal(model.type, "ProviderHealthChanged");
  assert.equal(bystander.find("ModelUpdate"), undefined);

  // Still following one simulated model: still told. Following none: no more ModelUpdate.
  await follower.connection.invoke("UnsubscribeFromModel", "sim-image");
  const availability = (u) => u.type === "ModelAvailabilityChanged";
  assert.equal(bystander.find("NavigationStateUpdate", availability), undefined, "Degraded models stay available");
  await report("Unhealthy");
  await follower.next("ModelUpdate", (u) => u.data.status === "Unhealthy");
  // Unhealthy takes the provider's models away: everyone is told, and so are the followers of its models.
  const gone = await bystander.next("NavigationStateUpdate", availability);
  assert.deepEqual([gone.data.provider, gone.data.available, gone.data.status], ["simulated", false, "Unhealthy"]);
  const goneForFollower = await follower.next("ModelUpdate", availability);
  assert.equal(goneForFollower.data.available, false);
  await follower.connection.invoke("UnsubscribeFromModel", "sim-video");
  await report("Healthy");
  await bystander.next("NavigationStateUpdate", (u) => u.data.status === "Healthy");
  const back = await bystander.next("NavigationStateUpdate", (u) => availability(u) && u.data.available);
  assert.equal(back.data.status, "Healthy");
  await follower.next("NavigationStateUpdate", (u) => u.data.status === "Healthy");
  await sleep(100);
  assert.equal(follower.find("ModelUpdate", (u) => u.data.status === "Healthy"), undefined);
  await assert.rejects(follower.connection.invoke("SubscribeToModel", ""), /Invalid model id/);
  await follower.connection.stop();
  await bystander.connection.stop();
  await assertNoLeaks(server, [HUB]);
});

test("an address outside navigation.allowed_networks is refused with 403", async () => {
  const closed = await startServer({ env: { SWITCHYARD__NAVIGATION__ALLOWED_NETWORKS: "10.0.0.0/8, 192.168.0.0/16" } });
  try {
    const res = await fetch(`${closed.url}${HUB}/negotiate?negotiateVersion=1`, { method: "POST" });
    assert.equal(res.status, 403);
    for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
      const c = builder(`${closed.url}${HUB}`, { transport }).build();
      await assert.rejects(c.start(), /403/);
    }
    const ws = builder(`${closed.url}${HUB}`, { transport: "WebSockets", skipNegotiation: true }).build();
    await assert.rejects(ws.start());
    // The other hubs are unaffected.
    assert.equal((await fetch(`${closed.url}/health/live`)).status, 200);
  } finally {
    await closed.stop();
  }
});
