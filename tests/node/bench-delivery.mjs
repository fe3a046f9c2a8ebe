// Benchmark (not a test): task-update delivery through the generation hubs, measured from
// `POST /api/tasks/{id}/events` to the official client's handler.
//
// 1,000 WebSocket connections (10 keys × 100), each subscribed to one task of its key (100 tasks, 10
// subscribers each). Phase 1 posts updates at a steady rate; phase 2 posts as fast as `LANES` sequential
// posters can. Each task is posted to by one lane only, so its updates are stored in order, and each
// subscriber receives them in that order: the n-th event a connection gets for a task is the n-th post.
//
// Run with scripts/bench-delivery (release build). Env: BENCH_RATE (updates/s, phase 1), BENCH_SECONDS,
// BENCH_CONNECTIONS, BENCH_LANES.
import { performance } from "node:perf_hooks";
import { startServer, builder, MASTER_KEY, sleep } from "./harness.js";

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 1000);
const KEYS = 10;
const TASKS = 100;
const RATE = Number(process.env.BENCH_RATE || 1000);
const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const LANES = Number(process.env.BENCH_LANES || 32);

const server = await startServer({
  env: { RUST_LOG: process.env.RUST_LOG || "warn", SWITCHYARD__GENERATION__DEFAULT_MAX_CONNECTIONS: "0", SWITCHYARD__GENERATION__CONNECT_BURST: "0" },
});
const json = { "X-API-Key": MASTER_KEY, "content-type": "application/json" };

const keys = [];
for (let k = 0; k < KEYS; k++) {
  const res = await fetch(`${server.url}/api/virtualkeys`, { method: "POST", headers: json, body: JSON.stringify({ keyName: `bench-${k}` }) });
  keys.push((await res.json()).virtualKey);
}
const tasks = [];
for (let t = 0; t < TASKS; t++) {
  const key = keys[t % KEYS];
  const res = await fetch(`${server.url}/v1/images/generations/async`, {
    method: "POST", headers: { Authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "external-bench", prompt: "bench" }),
  });
  tasks.push({ id: (await res.json()).taskId, key, posted: [] });
}
const taskIndex = new Map(tasks.map((t, i) => [t.id, i]));

const latencies = [];
let delivered = 0;
const connections = [];
const t0 = performance.now();
for (let c = 0; c < CONNECTIONS; c++) {
  const task = tasks[c % TASKS];
  const conn = builder(`${server.url}/hubs/image-generation`, { transport: "WebSockets", accessTokenFactory: () => task.key }).build();
  let next = 0;
  conn.on("TaskProgress", (id) => {
    const posted = tasks[taskIndex.get(id)].posted;
    const at = posted[next++];
    if (at !== undefined) latencies.push(performance.now() - at);
    delivered++;
  });
  connections.push(conn.start().then(() => conn.invoke("SubscribeToTask", task.id)).then(() => conn));
}
const conns = await Promise.all(connections);
console.log(`connected and subscribed ${conns.length} connections in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

async function post(task, progress) {
  task.posted.push(performance.now());
  const res = await fetch(`${server.url}/api/tasks/${task.id}/events`, {
    method: "POST", headers: json, body: JSON.stringify({ type: "progress", progress }),
  });
  if (res.status !== 200) throw new Error(`POST events answered ${res.status}`);
  await res.arrayBuffer();
}

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

async function phase(name, run) {
  latencies.length = 0;
  const before = delivered;
  const started = performance.now();
  const posted = await run();
  // Let the last deliveries land.
  const expected = before + posted * (CONNECTIONS / TASKS);
  for (let i = 0; i < 100 && delivered < expected; i++) await sleep(50);
  const elapsed = (performance.now() - started) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  console.log(
    `${name}: ${posted} updates posted, ${delivered - before}/${expected - before} delivered in ${elapsed.toFixed(2)} s → ` +
      `${Math.round((delivered - before) / elapsed)} deliveries/s (${Math.round(posted / elapsed)} updates/s); ` +
      `latency p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms`,
  );
}

await phase(`steady ${RATE} updates/s for ${SECONDS} s`, async () => {
  const interval = (1000 * LANES) / RATE;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(Array.from({ length: LANES }, async (_, lane) => {
    const mine = tasks.filter((_, i) => i % LANES === lane);
    for (let i = 0; ; i++) {
      const due = start + i * interval + (lane * interval) / LANES;
      if (due > end) break;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      await post(mine[i % mine.length], (i % 100) + 1);
    }
  }));
  return tasks.reduce((n, t) => n + t.posted.length, 0);
});

for (const t of tasks) t.posted.length = 0;
for (const c of conns) c.off("TaskProgress");
// Re-arm the handlers with fresh positions for phase 2.
for (let c = 0; c < conns.length; c++) {
  let next = 0;
  conns[c].on("TaskProgress", (id) => {
    const at = tasks[taskIndex.get(id)].posted[next++];
    if (at !== undefined) latencies.push(performance.now() - at);
    delivered++;
  });
}
await phase(`as fast as ${LANES} sequential posters go, ${SECONDS} s`, async () => {
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: LANES }, async (_, lane) => {
    const mine = tasks.filter((_, i) => i % LANES === lane);
    for (let i = 0; performance.now() < end; i++) await post(mine[i % mine.length], (i % 100) + 1);
  }));
  return tasks.reduce((n, t) => n + t.posted.length, 0);
});

const stats = await server.stats();
console.log(`server: ${stats.connectionActors} connection actors, ${stats.slowConsumersDropped} slow consumers dropped`);
await Promise.all(conns.map((c) => c.stop()));
await server.stop();
process.exit(0);
