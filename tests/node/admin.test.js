// The admin hub (/hubs/admin-notifications) driven by the official client, as an operator's dashboard
// uses it: master key only; key lifecycle, spend, cap and provider-health events as the REST API and the
// simulated provider act. Runs against whatever storage and Redis the environment selects.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, builder, MASTER_KEY, waitFor, assertNoLeaks } from "./harness.js";

const ADMIN_HUB = "/hubs/admin-notifications";
const WORKER_TOKEN = "sy-admin-test-worker-token";
let server;

before(async () => {
  server = await startServer({
    env: {
      SWITCHYARD__GENERATION__SIMULATED_DURATION_MS: "150",
      SWITCHYARD__GENERATION__SIMULATED_STEPS: "2",
      // Each simulated image costs 4.25: budget 10 is crossed at 80 % by the second job, and at 90, 95
      // and 100 % at once by the third.
      SWITCHYARD__GENERATION__SIMULATED_COST: "4.25",
      SWITCHYARD__GENERATION__WORKER_TOKEN: WORKER_TOKEN,
      SWITCHYARD__REDIS__KEY_PREFIX: `sy-node-admin-${process.pid}-${Date.now()}`,
    },
  });
});
after(async () => {
  await server?.stop();
});

const EVENTS = [
  "InitialProviderHealth",
  "SubscribedToVirtualKey",
  "UnsubscribedFromVirtualKey",
  "SubscribedToProvider",
  "ProviderHealthStatus",
  "ProviderHealthRefreshed",
  "ProviderHealthUpdate",
  "VirtualKeyCreated",
  "VirtualKeyUpdated",
  "VirtualKeyDeleted",
  "VirtualKeyUpdate",
  "HighSpendAlert",
  "ConnectionLimitReached",
  "Error",
];

/** An admin connection recording every event as {name, arg}; `next(name, pred)` waits for one. */
async function admin(opts = {}) {
  const connection = builder(`${server.url}${ADMIN_HUB}`, {
    transport: "WebSockets",
    accessTokenFactory: () => MASTER_KEY,
    ...opts,
  }).build();
  const events = [];
  for (const name of EVENTS) connection.on(name, (arg) => events.push({ name, arg }));
  await connection.start();
  const find = (name, pred = () => true) => events.find((e) => e.name === name && pred(e.arg));
  return {
    connection,
    events,
    find,
    next: (name, pred, what = name) => waitFor(() => find(name, pred), what).then((e) => e.arg),
    stop: () => connection.stop(),
  };
}

async function api(method, path, body, headers = { "X-API-Key": MASTER_KEY }) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...headers, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function createKey(body = {}) {
  const res = await api("POST", "/api/virtualkeys", { keyName: `k-${Math.random().toString(36).slice(2)}`, ...body });
  assert.equal(res.status, 201);
  return { key: res.body.virtualKey, id: res.body.keyInfo.id };
}

test("a wrong or missing master key cannot connect; a right one gets the initial provider health", async () => {
  for (const token of ["wrong-master-key", ""]) {
    for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
      const bad = builder(`${server.url}${ADMIN_HUB}`, { transport, accessTokenFactory: () => token }).build();
      await assert.rejects(bad.start(), /401|Unauthorized/, `${transport} with '${token}'`);
    }
  }
  // A virtual key is not a master key.
  const { key } = await createKey();
  const asKey = builder(`${server.url}${ADMIN_HUB}`, { accessTokenFactory: () => key }).build();
  await assert.rejects(asKey.start(), /401|Unauthorized/);
  const res = await fetch(`${server.url}${ADMIN_HUB}/negotiate?negotiateVersion=1`, {
    method: "POST",
    headers: { Authorization: "Bearer nope" },
  });
  assert.equal(res.status, 401);
  assert.equal(await res.text(), "");

  for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
    const a = await admin({ transport });
    const initial = await a.next("InitialProviderHealth");
    const sim = initial.find((p) => p.provider === "simulated");
    assert.ok(sim, JSON.stringify(initial));
    assert.equal(sim.status, "Healthy");
    await a.stop();
  }
  await assertNoLeaks(server, [ADMIN_HUB]);
});

test("key created, updated, disabled and deleted reach every admin; subscribers get VirtualKeyUpdate", async () => {
  const a = await admin();
  const b = await admin({ transport: "ServerSentEvents" });
  const { id } = await createKey({ keyName: "lifecycle" });
  for (const conn of [a, b]) {
    const created = await conn.next("VirtualKeyCreated", (k) => k.id === id);
    assert.equal(created.keyName, "lifecycle");
    assert.ok(!("virtualKey" in created), "the key itself is never sent");
    assert.ok(!JSON.stringify(created).includes("condt_") || created.keyPrefix.startsWith("condt_"));
  }

  await a.connection.invoke("SubscribeToVirtualKey", id);
  assert.equal(await a.next("SubscribedToVirtualKey", (v) => v === id), id);
  await a.connection.invoke("SubscribeToVirtualKey", 999999);
  assert.deepEqual(await a.next("Error"), { message: "Virtual key 999999 not found" });

  assert.equal((await api("PUT", `/api/virtualkeys/${id}`, { description: "renamed" })).status, 200);
  const updated = await b.next("VirtualKeyUpdated", (k) => k.id === id && k.description === "renamed");
  assert.equal(updated.description, "renamed");
  const u1 = await a.next("VirtualKeyUpdate", (u) => u.updateType === "Updated");
  assert.equal(u1.virtualKeyId, id);
  assert.equal(u1.priority, "normal");
  assert.deepEqual(u1.details, { description: "renamed" });
  assert.ok(!Number.isNaN(Date.parse(u1.timestamp)));

  assert.equal((await api("PUT", `/api/virtualkeys/${id}`, { isEnabled: false })).status, 200);
  const disabled = await a.next("VirtualKeyUpdate", (u) => u.updateType === "Disabled");
  assert.equal(disabled.priority, "high");
  await a.next("VirtualKeyUpdated", (k) => k.id === id && k.isEnabled === false);

  assert.equal((await api("DELETE", `/api/virtualkeys/${id}`)).status, 204);
  for (const conn of [a, b]) {
    assert.equal((await conn.next("VirtualKeyDeleted", (d) => d.virtualKeyId === id)).virtualKeyId, id);
  }
  const deleted = await a.next("VirtualKeyUpdate", (u) => u.updateType === "Deleted");
  assert.equal(deleted.priority, "high");
  // b never subscribed to the key: it gets the admins' events only.
  assert.equal(b.find("VirtualKeyUpdate"), undefined);

  // After unsubscribing, a key's updates stop.
  const other = await createKey();
  await a.connection.invoke("SubscribeToVirtualKey", String(other.id));
  await a.next("SubscribedToVirtualKey", (v) => v === other.id);
  await a.connection.invoke("UnsubscribeFromVirtualKey", other.id);
  await api("PUT", `/api/virtualkeys/${other.id}`, { description: "quiet" });
  await b.next("VirtualKeyUpdated", (k) => k.id === other.id && k.description === "quiet");
  await a.next("VirtualKeyUpdated", (k) => k.id === other.id && k.description === "quiet");
  assert.equal(a.find("VirtualKeyUpdate", (u) => u.virtualKeyId === other.id), undefined);
  await a.stop();
  await b.stop();
});

test("keys created, disabled, enabled and deleted with the CLI in another process reach every admin; the key's clients are cut", async () => {
  const a = await admin();
  const b = await admin({ transport: "LongPolling" });
  const created = await server.cli(["keys", "create", "--name", "from-the-cli", "--max-budget", "3"]);
  assert.equal(created.code, 0, created.stderr);
  const key = created.stdout.trim();
  assert.match(key, /^condt_/);
  let id;
  for (const conn of [a, b]) {
    const info = await conn.next("VirtualKeyCreated", (k) => k.keyName === "from-the-cli");
    assert.equal(info.maxBudget, 3);
    assert.ok(!JSON.stringify(info).includes(key), "the key itself is never sent");
    id = info.id;
  }
  await a.connection.invoke("SubscribeToVirtualKey", id);
  await a.next("SubscribedToVirtualKey", (v) => v === id);

  // The key's live client (the official client, over SSE) is closed within a second of the CLI's change.
  const client = builder(`${server.url}/hubs/image-generation`, { transport: "ServerSentEvents", accessTokenFactory: () => key }).build();
  let closedWith;
  const closed = new Promise((resolve) => client.onclose((e) => resolve((closedWith = e))));
  await client.start();
  const disabled = await server.cli(["keys", "disable", String(id)]);
  assert.equal(disabled.code, 0, disabled.stderr);
  const done = Date.now();
  await closed;
  assert.ok(Date.now() - done < 1000, `closed ${Date.now() - done} ms after the CLI finished`);
  assert.match(String(closedWith?.message), /Virtual key is disabled/);
  for (const conn of [a, b]) await conn.next("VirtualKeyUpdated", (k) => k.id === id && k.isEnabled === false);
  const update = await a.next("VirtualKeyUpdate", (u) => u.virtualKeyId === id && u.updateType === "Disabled");
  assert.equal(update.priority, "high");

  assert.equal((await server.cli(["keys", "enable", String(id)])).code, 0);
  await b.next("VirtualKeyUpdated", (k) => k.id === id && k.isEnabled === true);
  await a.next("VirtualKeyUpdate", (u) => u.virtualKeyId === id && u.updateType === "Enabled");

  assert.equal((await server.cli(["keys", "delete", String(id)])).code, 0);
  for (const conn of [a, b]) await conn.next("VirtualKeyDeleted", (d) => d.virtualKeyId === id);
  await a.next("VirtualKeyUpdate", (u) => u.virtualKeyId === id && u.updateType === "Deleted");
  const again = await server.cli(["keys", "delete", String(id)]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, new RegExp(`no virtual key with id ${id}`));
  // Each change was announced once.
  const count = (name, pred) => a.events.filter((e) => e.name === name && pred(e.arg)).length;
  assert.equal(count("VirtualKeyCreated", (k) => k.id === id), 1);
  assert.equal(count("VirtualKeyDeleted", (d) => d.virtualKeyId === id), 1);
  await a.stop();
  await b.stop();
});

/** Runs a simulated job; done when the key's subscriber `a` sees the spend reach `spend`. */
test("a key that expires is reported to its subscribers with high priority", async () => {
  const a = await admin();
  const { id } = await createKey({ expiresAt: new Date(Date.now() + 1500).toISOString() });
  await a.connection.invoke("SubscribeToVirtualKey", id);
  await a.next("SubscribedToVirtualKey", (v) => v === id);
  const expired = await a.next("VirtualKeyUpdate", (u) => u.virtualKeyId === id && u.updateType === "Expired");
  assert.equal(expired.priority, "high");
  await a.stop();
});

async function runJob(key, a, spend) {
  const res = await api("POST", "/v1/images/generations/async", { model: "sim-image", prompt: "p" }, {
    Authorization: `Bearer ${key}`,
  });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  return a.next("VirtualKeyUpdate", (u) => u.details?.currentSpend === spend, `spend to reach ${spend}`);
}

test("spend crossing 80, 90, 95 and 100 % of the budget raises each alert once", async () => {
  const a = await admin();
  const { key, id } = await createKey({ maxBudget: 10 });
  await a.connection.invoke("SubscribeToVirtualKey", id);
  await a.next("SubscribedToVirtualKey", (v) => v === id);
  const alerts = () => a.events.filter((e) => e.name === "HighSpendAlert" && e.arg.virtualKeyId === id);

  const spent = await runJob(key, a, 4.25); // 42.5 %
  assert.deepEqual([spent.updateType, spent.priority, spent.details.amount], ["SpendUpdated", "normal", 4.25]);
  assert.equal(alerts().length, 0);

  await runJob(key, a, 8.5); // 85 %
  const first = await a.next("HighSpendAlert", (x) => x.virtualKeyId === id);
  assert.deepEqual(
    { type: first.alertType, spend: first.currentSpend, limit: first.budgetLimit, pct: first.percentageUsed },
    { type: "HighSpend", spend: 8.5, limit: 10, pct: 85 },
  );
  assert.equal(first.severity, "warning");

  await runJob(key, a, 12.75); // crosses 90, 95 and 100 % at once
  await waitFor(() => alerts().length >= 4, "four alerts in all");
  const [, a90, a95, a100] = alerts().map((e) => e.arg);
  assert.deepEqual([a90.threshold, a95.threshold, a100.threshold], [90, 95, 100]);
  assert.equal(a100.alertType, "BudgetExceeded");
  assert.equal(a100.severity, "critical");
  assert.equal(a100.percentageUsed, 127.5);
  const exceeded = await a.next("VirtualKeyUpdate", (u) => u.updateType === "BudgetExceeded");
  assert.equal(exceeded.priority, "high");

  // The key is out of budget now: nothing more is spent, and no alert is repeated.
  const res = await api("POST", "/v1/images/generations/async", { model: "sim-image", prompt: "p" }, {
    Authorization: `Bearer ${key}`,
  });
  assert.equal(res.status, 401);
  assert.equal(alerts().length, 4);
  await a.stop();
});

test("a connection refused by a key's cap raises ConnectionLimitReached", async () => {
  const a = await admin();
  const { key, id } = await createKey({ maxConnections: 1 });
  const hub = () => builder(`${server.url}/hubs/image-generation`, { accessTokenFactory: () => key }).build();
  const first = hub();
  await first.start();
  await assert.rejects(hub().start(), /Connection limit reached/);
  const reached = await a.next("ConnectionLimitReached", (x) => x.virtualKeyId === id);
  assert.equal(reached.limit, 1);
  await first.stop();
  await a.stop();
});

test("provider health: subscribe, worker reports pushed as ProviderHealthUpdate, refresh", async () => {
  const a = await admin();
  await a.connection.invoke("SubscribeToProvider", "simulated");
  const status = await a.next("ProviderHealthStatus");
  assert.equal(status.provider, "simulated");
  await a.next("SubscribedToProvider", (n) => n === "simulated");
  const order = a.events.map((e) => e.name);
  assert.ok(order.indexOf("ProviderHealthStatus") < order.indexOf("SubscribedToProvider"), order.join());

  await a.connection.invoke("SubscribeToProvider", "nowhere");
  await a.next("Error", (e) => e.message === "Provider nowhere not found");

  // Workers report with the worker token (or the master key); anyone else is refused.
  const path = "/api/providers/simulated/health";
  const report = { status: "Degraded", responseTimeMs: 1234, details: "slow upstream" };
  assert.equal((await api("POST", path, report, { "X-Worker-Token": "wrong" })).status, 401);
  assert.equal((await api("POST", "/api/providers/nowhere/health", report, { "X-Worker-Token": WORKER_TOKEN })).status, 404);
  assert.equal((await api("POST", path, { status: "Sick" }, { "X-Worker-Token": WORKER_TOKEN })).status, 400);
  const ok = await api("POST", path, report, { "X-Worker-Token": WORKER_TOKEN });
  assert.equal(ok.status, 200);
  const update = await a.next("ProviderHealthUpdate", (u) => u.status === "Degraded");
  assert.deepEqual(
    { provider: update.provider, ms: update.responseTimeMs, details: update.details },
    { provider: "simulated", ms: 1234, details: "slow upstream" },
  );

  await a.connection.invoke("RefreshProviderHealth");
  const all = await a.next("ProviderHealthRefreshed");
  assert.equal(all.find((p) => p.provider === "simulated").status, "Degraded");

  // Back to healthy with the master key; outcomes of later jobs are judged from there.
  assert.equal((await api("POST", path, { status: "healthy" })).status, 200);
  await a.next("ProviderHealthUpdate", (u) => u.status === "Healthy");
  const listed = await api("GET", "/api/providers/health");
  assert.equal(listed.body.find((p) => p.provider === "simulated").status, "Healthy");
  await a.connection.invoke("UnsubscribeFromProvider", "simulated");
  await a.stop();
  await assertNoLeaks(server, [ADMIN_HUB]);
});

test("failing jobs turn the simulated provider unhealthy, and operators are told", async () => {
  const a = await admin();
  const { key } = await createKey();
  for (let i = 0; i < 3; i++) {
    const res = await api("POST", "/v1/images/generations/async", { model: "sim-fail-image", prompt: "p" }, {
      Authorization: `Bearer ${key}`,
    });
    assert.equal(res.status, 202);
  }
  const update = await a.next("ProviderHealthUpdate", (u) => u.status === "Unhealthy", "the provider to turn Unhealthy");
  assert.equal(update.provider, "simulated");
  await a.stop();
});
