// Benchmark (not a test): spaces events across two nodes through the Redis backplane, measured from
// `POST /api/smart-spaces/:id/messages` on node A to the `data:` line on SSE streams held by node B.
// For comparison, the same number of streams is held by node A itself: those events take no backplane hop.
//
// Both nodes share one PostgreSQL database and one Redis (same key prefix). Posters send at a steady rate
// (phase 1), then as fast as LANES sequential posters can (phase 2). Each message carries its send time.
//
// Run with scripts/bench-backplane (release build). Env: BENCH_STREAMS (per node), BENCH_RATE, BENCH_SECONDS,
// BENCH_LANES; DATABASE_URL (PostgreSQL) and REDIS_URL are required.
import { performance } from "node:perf_hooks";
import { startServer, sleep } from "./harness.js";

const STREAMS = Number(process.env.BENCH_STREAMS || 100);
const RATE = Number(process.env.BENCH_RATE || 200);
const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const LANES = Number(process.env.BENCH_LANES || 16);
const SK = "sk_bench_backplane_0123456789abcdef0123456789abcdef01";
if (!process.env.DATABASE_URL?.startsWith("postgres") || !process.env.REDIS_URL) {
  throw new Error("bench-backplane needs DATABASE_URL (PostgreSQL) and REDIS_URL");
}
const prefix = `sy-bench-${process.pid}`;
const env = {
  RUST_LOG: process.env.RUST_LOG || "warn",
  HSAFA_SECRET_KEY: SK,
  SWITCHYARD__REDIS__KEY_PREFIX: prefix,
  SWITCHYARD__DATABASE__POOL_SIZE: "32",
};
const a = await startServer({ env });
const b = await startServer({ env });
const headers = { "x-secret-key": SK, "content-type": "application/json" };
const call = async (node, method, path, body) => {
  const res = await fetch(`${node.url}${path}`, { method, headers, body: body && JSON.stringify(body) });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
};

const { entity } = await call(a, "POST", "/api/entities", { type: "human", externalId: `bench-${process.pid}` });
const { smartSpace } = await call(a, "POST", "/api/smart-spaces", { name: "bench" });
await call(a, "POST", `/api/smart-spaces/${smartSpace.id}/members`, { entityId: entity.id });

// Each stream records, per message, the time from its send (carried in the content) to its arrival.
const results = { local: [], remote: [] };
const controllers = [];
async function openStream(node, into) {
  const controller = new AbortController();
  controllers.push(controller);
  const res = await fetch(`${node.url}/api/smart-spaces/${smartSpace.id}/stream`, { headers, signal: controller.signal });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  (async () => {
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = frame.split("\n").find((l) => l.startsWith("data: "));
          if (!data) continue;
          const event = JSON.parse(data.slice(6));
          if (event.type !== "smartSpace.message") continue;
          const sent = Number(event.data.message.content);
          if (Number.isFinite(sent)) into.push(performance.now() - sent);
        }
      }
    } catch {
      // aborted at the end
    }
  })();
}
for (let i = 0; i < STREAMS; i++) {
  await openStream(a, results.local);
  await openStream(b, results.remote);
}
await sleep(500);

const post = () =>
  call(a, "POST", `/api/smart-spaces/${smartSpace.id}/messages`, { content: String(performance.now()), entityId: entity.id });

function report(name, posted, seconds) {
  const line = (kind) => {
    const l = results[kind].slice().sort((x, y) => x - y);
    const q = (p) => (l.length ? l[Math.min(l.length - 1, Math.floor(p * l.length))].toFixed(1) : "-");
    return `${kind} (${STREAMS} streams on node ${kind === "local" ? "A" : "B"}): ${l.length} deliveries` +
      ` (${(l.length / seconds).toFixed(0)}/s, ${((100 * l.length) / (posted * STREAMS)).toFixed(1)} % of expected),` +
      ` p50 ${q(0.5)} ms, p99 ${q(0.99)} ms`;
  };
  console.log(`${name}: ${posted} messages posted on A in ${seconds.toFixed(1)} s (${(posted / seconds).toFixed(0)}/s)`);
  console.log(`  ${line("local")}`);
  console.log(`  ${line("remote")}`);
}

// Phase 1: a steady rate.
let posted = 0;
let t0 = performance.now();
const inflight = [];
for (let tick = 0; tick < RATE * SECONDS; tick++) {
  const due = t0 + (tick * 1000) / RATE;
  const wait = due - performance.now();
  if (wait > 1) await sleep(wait);
  inflight.push(post().then(() => posted++));
}
await Promise.all(inflight);
await sleep(1500);
report(`steady ${RATE}/s`, posted, (performance.now() - t0 - 1500) / 1000);

// Phase 2: as fast as LANES sequential posters go.
results.local.length = 0;
results.remote.length = 0;
posted = 0;
t0 = performance.now();
const stop = t0 + SECONDS * 1000;
await Promise.all(
  Array.from({ length: LANES }, async () => {
    while (performance.now() < stop) {
      await post();
      posted++;
    }
  }),
);
const elapsed = (performance.now() - t0) / 1000;
await sleep(1500);
report(`saturated (${LANES} lanes)`, posted, elapsed);

for (const c of controllers) c.abort();
await a.stop();
await b.stop();
