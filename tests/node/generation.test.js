// The generation hubs driven by the official client, as an API customer uses them: start a job over
// REST with a virtual key, connect with the same key, subscribe, watch progress. Events must reach
// exactly the owner's subscribed connections. Runs against whatever storage and Redis the environment
// selects (DATABASE_URL, REDIS_URL), so scripts/test-clients runs it on the embedded defaults and on
// PostgreSQL + Redis.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, builder, MASTER_KEY, waitFor, within, sleep, assertNoLeaks } from "./harness.js";

let server;
const HUBS = ["/hubs/image-generation", "/hubs/video-generation"];

before(async () => {
  server = await startServer({
    env: {
      SWITCHYARD__GENERATION__SIMULATED_DURATION_MS: "900",
      SWITCHYARD__GENERATION__SIMULATED_STEPS: "3",
      // A private namespace in a shared Redis (ignored without Redis).
      SWITCHYARD__REDIS__KEY_PREFIX: `sy-node-${process.pid}-${Date.now()}`,
    },
  });
});
after(async () => {
  await server?.stop();
});

async function createKey(body = {}) {
  const res = await fetch(`${server.url}/api/virtualkeys`, {
    method: "POST",
    headers: { "X-API-Key": MASTER_KEY, "content-type": "application/json" },
    body: JSON.stringify({ keyName: `k-${Math.random().toString(36).slice(2)}`, ...body }),
  });
  assert.equal(res.status, 201);
  const created = await res.json();
  return { key: created.virtualKey, id: created.keyInfo.id };
}

async function startJob(key, kind, model) {
  const res = await fetch(`${server.url}/v1/${kind}/generations/async`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: "a lighthouse at dusk" }),
  });
  assert.equal(res.status, 202);
  const body = await res.json();
  return kind === "images" ? body.taskId : body.requestId;
}

function hub(kind, key, transport = "WebSockets") {
  const path = kind === "images" ? "/hubs/image-generation" : "/hubs/video-generation";
  return builder(`${server.url}${path}`, { transport, accessTokenFactory: () => key }).build();
}

const NAMES = {
  images: { sub: "SubscribeToTask", progress: "TaskProgress", done: "TaskCompleted", failed: "TaskFailed" },
  videos: { sub: "SubscribeToRequest", progress: "RequestProgress", done: "RequestCompleted", failed: "RequestFailed" },
};

/** Records every generation event a connection receives, as [event, id, payload]. */
function record(connection, kind) {
  const seen = [];
  const n = NAMES[kind];
  connection.on(n.progress, (id, p) => void seen.push([n.progress, id, p]));
  connection.on(n.done, (id, r) => void seen.push([n.done, id, r]));
  connection.on(n.failed, (id, e) => void seen.push([n.failed, id, e]));
  return seen;
}

for (const [kind, transport] of [
  ["images", "WebSockets"],
  ["images", "LongPolling"],
  ["videos", "WebSockets"],
  ["videos", "ServerSentEvents"],
]) {
  test(`${kind}: start, connect, subscribe, watch progress to the end over ${transport}`, async () => {
    const { key } = await createKey();
    const id = await startJob(key, kind, kind === "images" ? "sim-image" : "sim-video");
    const c = hub(kind, key, transport);
    const seen = record(c, kind);
    await c.start();
    await c.invoke(NAMES[kind].sub, id);
    await waitFor(() => seen.some(([e]) => e === NAMES[kind].done), "completion", 10000);
    const progress = seen.filter(([e]) => e === NAMES[kind].progress).map(([, , p]) => p);
    assert.ok(progress.every((p) => Number.isInteger(p) && p >= 0 && p <= 100), `integer progress: ${progress}`);
    assert.deepEqual([...progress].sort((a, b) => a - b), progress, "progress only rises");
    const [, doneId, result] = seen.find(([e]) => e === NAMES[kind].done);
    assert.equal(doneId, id);
    const url = kind === "images" ? result.imageUrl : result.videoUrl;
    if (kind === "images") assert.equal(result.images[0].url, url);
    const picture = await fetch(url);
    assert.equal(picture.status, 200);
    assert.ok(seen.every(([, eid]) => eid === id), "nothing about other tasks");
    await c.stop();
  });
}

test("two keys, many tasks: every event reaches exactly its owner's subscribed connections", async () => {
  const a = await createKey();
  const b = await createKey();
  const conns = {
    aSub: hub("images", a.key), aIdle: hub("images", a.key, "LongPolling"),
    bSub: hub("images", b.key, "LongPolling"), bIdle: hub("images", b.key),
  };
  const seen = Object.fromEntries(Object.entries(conns).map(([n, c]) => [n, record(c, "images")]));
  await Promise.all(Object.values(conns).map((c) => c.start()));
  const tasksA = await Promise.all(Array.from({ length: 8 }, () => startJob(a.key, "images", "sim-image")));
  const tasksB = await Promise.all(Array.from({ length: 8 }, () => startJob(b.key, "images", "sim-image")));
  for (const id of tasksA) await conns.aSub.invoke("SubscribeToTask", id);
  for (const id of tasksB) await conns.bSub.invoke("SubscribeToTask", id);
  // A stranger's task cannot be subscribed to, and leaves no trace.
  await assert.rejects(conns.aSub.invoke("SubscribeToTask", tasksB[0]), /HubException: Unauthorized access to task$/);

  const completed = (name) => new Set(seen[name].filter(([e]) => e === "TaskCompleted").map(([, id]) => id));
  await waitFor(() => completed("aSub").size === 8 && completed("bSub").size === 8, "all completions", 15000);
  await sleep(300);
  assert.deepEqual([...completed("aSub")].sort(), [...tasksA].sort());
  assert.deepEqual([...completed("bSub")].sort(), [...tasksB].sort());
  assert.ok(seen.aSub.every(([, id]) => tasksA.includes(id)), "A sees only A's tasks");
  assert.ok(seen.bSub.every(([, id]) => tasksB.includes(id)), "B sees only B's tasks");
  assert.deepEqual(seen.aIdle, [], "an unsubscribed connection of the same key hears nothing");
  assert.deepEqual(seen.bIdle, []);
  await Promise.all(Object.values(conns).map((c) => c.stop()));
  await assertNoLeaks(server, HUBS);
});

test("hub errors carry the exact texts", async () => {
  const a = await createKey();
  const b = await createKey();
  const foreignTask = await startJob(b.key, "images", "sim-image");
  const foreignRequest = await startJob(b.key, "videos", "sim-video");
  const img = hub("images", a.key);
  const vid = hub("videos", a.key);
  await img.start();
  await vid.start();
  const hubError = (text) => new RegExp(`^Error: An unexpected error occurred invoking '\\w+' on the server\\. HubException: ${text}$`);
  await assert.rejects(img.invoke("SubscribeToTask", "not-a-uuid"), hubError("Invalid task ID format"));
  await assert.rejects(img.invoke("SubscribeToTask", crypto.randomUUID()), hubError("Task not found"));
  await assert.rejects(img.invoke("SubscribeToTask", foreignTask), hubError("Unauthorized access to task"));
  await assert.rejects(img.invoke("SubscribeToTask", foreignRequest), hubError("Task not found"));
  await assert.rejects(vid.invoke("SubscribeToRequest", "nope"), hubError("Invalid request ID format"));
  await assert.rejects(vid.invoke("SubscribeToRequest", crypto.randomUUID()), hubError("Request not found"));
  await assert.rejects(vid.invoke("SubscribeToRequest", foreignRequest), hubError("Unauthorized access to request"));
  await img.stop();
  await vid.stop();

  // An invalid key never gets a connection: negotiate 401, and a WebSocket without negotiate is refused.
  const bad = builder(`${server.url}/hubs/image-generation`, { accessTokenFactory: () => "condt_nope" }).build();
  await assert.rejects(bad.start(), /401/);
  const skip = builder(`${server.url}/hubs/image-generation`, {
    transport: "WebSockets", skipNegotiation: true, accessTokenFactory: () => "condt_nope",
  }).build();
  await assert.rejects(skip.start());
  const negotiate = await fetch(`${server.url}/hubs/image-generation/negotiate?negotiateVersion=1`, { method: "POST" });
  assert.equal(negotiate.status, 401);
  assert.equal(await negotiate.text(), "");
});

test("a late subscriber to a finished task gets its end at once, and so does a re-subscriber", async () => {
  const { key } = await createKey();
  const id = await startJob(key, "images", "sim-image");
  await waitFor(async () => {
    const res = await fetch(`${server.url}/v1/images/generations/${id}/status`, { headers: { "X-API-Key": key } });
    return (await res.json()).status === "completed";
  }, "the job to finish", 10000, 100);
  for (const transport of ["WebSockets", "LongPolling"]) {
    const c = hub("images", key, transport);
    const seen = record(c, "images");
    await c.start();
    await c.invoke("SubscribeToTask", id);
    await waitFor(() => seen.length > 0, "the latest state", 3000);
    assert.equal(seen[0][0], "TaskCompleted");
    assert.equal(seen[0][1], id);
    await c.stop();
  }
});

test("cancel reaches subscribers as TaskFailed", async () => {
  const { key } = await createKey();
  const id = await startJob(key, "images", "external-model");
  const c = hub("images", key);
  const seen = record(c, "images");
  await c.start();
  await c.invoke("SubscribeToTask", id);
  const res = await fetch(`${server.url}/v1/images/generations/${id}`, { method: "DELETE", headers: { "X-API-Key": key } });
  assert.equal(res.status, 200);
  await waitFor(() => seen.length > 0, "the cancellation event", 3000);
  assert.deepEqual(seen[0], ["TaskFailed", id, "Task was cancelled"]);
  await c.stop();
});

test("worker events reported over REST reach the owner's connection", async () => {
  const { key } = await createKey();
  const id = await startJob(key, "videos", "external-video-model");
  const c = hub("videos", key);
  const seen = record(c, "videos");
  await c.start();
  await c.invoke("SubscribeToRequest", id);
  const report = (body) => fetch(`${server.url}/api/tasks/${id}/events`, {
    method: "POST", headers: { "X-API-Key": MASTER_KEY, "content-type": "application/json" }, body: JSON.stringify(body),
  });
  assert.equal((await report({ type: "progress", progress: 30 })).status, 200);
  await waitFor(() => seen.length === 1, "progress", 3000);
  assert.deepEqual(seen[0], ["RequestProgress", id, 30]);
  assert.equal((await report({ type: "completed", result: { videoUrl: "https://cdn.example/v.mp4" } })).status, 200);
  await waitFor(() => seen.length === 2, "completion", 3000);
  assert.deepEqual(seen[1], ["RequestCompleted", id, { videoUrl: "https://cdn.example/v.mp4" }]);
  await c.stop();
});

test("a disabled key loses its live connections within a second, and its REST calls fail at once", async () => {
  const { key, id: keyId } = await createKey();
  const conns = [hub("images", key), hub("videos", key, "LongPolling"), hub("images", key, "ServerSentEvents")];
  const closed = conns.map((c) => new Promise((resolve) => c.onclose((e) => resolve([Date.now(), e?.message]))));
  await Promise.all(conns.map((c) => c.start()));
  const started = Date.now();
  const res = await fetch(`${server.url}/api/virtualkeys/${keyId}`, {
    method: "PUT", headers: { "X-API-Key": MASTER_KEY, "content-type": "application/json" },
    body: JSON.stringify({ isEnabled: false }),
  });
  assert.equal(res.status, 200);
  const ends = await within(Promise.all(closed), 3000, "connections to close");
  for (const [at, message] of ends) {
    assert.ok(at - started < 1000, `closed after ${at - started} ms`);
    assert.match(message, /Virtual key is disabled/);
  }
  const rest = await fetch(`${server.url}/v1/images/generations/async`, {
    method: "POST", headers: { Authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "sim-image", prompt: "x" }),
  });
  assert.equal(rest.status, 401);
  await assertNoLeaks(server, HUBS);
});

test("a key's connections are capped, across hubs", async () => {
  const { key } = await createKey({ maxConnections: 2 });
  const first = hub("images", key);
  const second = hub("videos", key);
  await first.start();
  await second.start();
  const third = hub("images", key, "LongPolling");
  await assert.rejects(third.start(), /Connection limit reached: at most 2 concurrent connections/);
  await first.stop();
  const again = hub("images", key);
  await again.start();
  await again.stop();
  await second.stop();
});
