// Graceful shutdown with the official client: SIGTERM makes the server stop accepting and send every
// SignalR connection a Close with allowReconnect: true (over WebSockets, SSE and long polling), then exit
// promptly. Clients built withAutomaticReconnect come back to a server restarted on the same port and
// database, subscribe again, and miss no task event: the worker's report made while they were away is
// stored, and a late subscription receives it at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { MASTER_KEY, binaryPath, builder, deferred, freePort, repoRoot, sleep, waitFor, within } from "./harness.js";

/** Starts `switchyard serve` on `port` with `dataDir`; resolves once /health/live answers. */
async function serve(port, dataDir, env = {}) {
  const lines = [];
  const child = spawn(binaryPath(), ["serve", "--bind", `127.0.0.1:${port}`], {
    cwd: repoRoot,
    env: {
      ...process.env,
      CONDUIT_MASTER_KEY: MASTER_KEY,
      SWITCHYARD__SERVER__DATA_DIR: dataDir,
      SWITCHYARD__SERVER__WORKERS: "2",
      SWITCHYARD__SHUTDOWN__TIMEOUT: "10",
      SWITCHYARD__REDIS__KEY_PREFIX: `sy-node-shutdown-${process.pid}`,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of [child.stdout, child.stderr]) stream.on("data", (c) => lines.push(c.toString()));
  const exit = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    const res = await fetch(`${url}/health/live`).catch(() => null);
    return res?.status === 200;
  }, "the server to answer /health/live", 30000, 50);
  return { child, exit, url, log: () => lines.join("") };
}

async function post(url, body, headers) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

test("SIGTERM: clients get Close with allowReconnect, reconnect to the restarted server, miss no task event", async () => {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-shutdown-"));
  let server = await serve(port, dataDir);
  const clients = [];
  try {
    const created = await post(`${server.url}/api/virtualkeys`, { keyName: "shutdown" }, { "X-API-Key": MASTER_KEY });
    assert.equal(created.status, 201);
    const key = created.body.virtualKey;
    // A model no built-in provider runs: an external worker reports on it over REST.
    const job = await post(`${server.url}/v1/images/generations/async`, { model: "ext-image", prompt: "p" }, {
      Authorization: `Bearer ${key}`,
    });
    assert.equal(job.status, 202);
    const taskId = job.body.taskId;
    const report = (body) =>
      post(`${server.url}/api/tasks/${taskId}/events`, body, { "X-API-Key": MASTER_KEY }).then((r) => r.status);
    assert.equal(await report({ type: "progress", progress: 30 }), 200);

    for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
      const connection = builder(`${server.url}/hubs/image-generation`, {
        transport,
        accessTokenFactory: () => key,
        automaticReconnect: Array(40).fill(250),
      }).build();
      const c = { transport, connection, events: [], reconnecting: deferred(), reconnected: deferred(), closed: false };
      connection.on("TaskProgress", (id, progress) => c.events.push(["progress", id, progress]));
      connection.on("TaskCompleted", (id, result) => c.events.push(["completed", id, result]));
      connection.onreconnecting((error) => c.reconnecting.resolve(error));
      // As an application does: subscribe again after a reconnect; the current state arrives at once.
      connection.onreconnected(async () => {
        await connection.invoke("SubscribeToTask", taskId).catch(() => {});
        c.reconnected.resolve();
      });
      connection.onclose(() => (c.closed = true));
      await connection.start();
      await connection.invoke("SubscribeToTask", taskId);
      await waitFor(() => c.events.some((e) => e[0] === "progress" && e[2] === 30), `${transport}: progress 30`);
      clients.push(c);
    }

    const stoppedAt = Date.now();
    server.child.kill("SIGTERM");
    for (const c of clients) {
      const error = await within(c.reconnecting.promise, 5000, `${c.transport}: onreconnecting after SIGTERM`);
      // The client reconnects only when the Close said allowReconnect: true; the reason comes with it.
      assert.match(String(error?.message), /Server is shutting down/, c.transport);
    }
    const exited = await within(server.exit, 15000, "the server to exit after SIGTERM");
    assert.equal(exited.code, 0, server.log());
    assert.ok(Date.now() - stoppedAt < 10000, "exits well within shutdown.timeout");
    assert.match(server.log(), /shutting down/);

    server = await serve(port, dataDir);
    // The worker finishes the job while (or before) the clients come back.
    assert.equal(await report({ type: "completed", result: { imageUrl: "https://example.test/x.png" } }), 200);
    for (const c of clients) {
      await within(c.reconnected.promise, 20000, `${c.transport}: onreconnected`);
      await waitFor(() => c.events.some((e) => e[0] === "completed" && e[1] === taskId), `${c.transport}: TaskCompleted`);
      assert.equal(c.closed, false, `${c.transport} never gave up`);
      assert.equal(c.connection.state, "Connected");
    }
  } finally {
    for (const c of clients) await c.connection.stop().catch(() => {});
    server.child.kill("SIGTERM");
    await Promise.race([server.exit, sleep(5000)]);
    server.child.kill("SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test("a simulated job running at SIGTERM is resumed by the restarted server; the reconnected client gets its completion", async () => {
  // The embedded defaults: SQLite under the data dir, no Redis; the job runs inside the server process.
  const env = {
    DATABASE_URL: "",
    REDIS_URL: "",
    SWITCHYARD__GENERATION__SIMULATED_DURATION_MS: "6000",
    SWITCHYARD__GENERATION__SIMULATED_STEPS: "6",
  };
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-shutdown-"));
  let server = await serve(port, dataDir, env);
  let connection;
  try {
    const created = await post(`${server.url}/api/virtualkeys`, { keyName: "mid-flight" }, { "X-API-Key": MASTER_KEY });
    const key = created.body.virtualKey;
    const job = await post(`${server.url}/v1/images/generations/async`, { model: "sim-image", prompt: "p" }, {
      Authorization: `Bearer ${key}`,
    });
    assert.equal(job.status, 202);
    const taskId = job.body.taskId;
    const events = [];
    const reconnected = deferred();
    connection = builder(`${server.url}/hubs/image-generation`, {
      accessTokenFactory: () => key,
      automaticReconnect: Array(120).fill(250),
    }).build();
    connection.on("TaskProgress", (id, progress) => events.push(["progress", id, progress]));
    connection.on("TaskCompleted", (id, result) => events.push(["completed", id, result]));
    connection.on("TaskFailed", (id, error) => events.push(["failed", id, error]));
    connection.onreconnected(async () => {
      await connection.invoke("SubscribeToTask", taskId).catch(() => {});
      reconnected.resolve();
    });
    await connection.start();
    await connection.invoke("SubscribeToTask", taskId);
    await waitFor(() => events.some((e) => e[0] === "progress" && e[2] > 0), "the job's first progress step");

    server.child.kill("SIGTERM");
    assert.equal((await within(server.exit, 15000, "the server to exit")).code, 0, server.log());
    const status = async () => {
      const res = await fetch(`${server.url}/v1/images/generations/${taskId}/status`, { headers: { Authorization: `Bearer ${key}` } });
      return res.json();
    };
    const progressAtStop = events.filter((e) => e[0] === "progress").at(-1)[2];

    server = await serve(port, dataDir, env);
    const stored = await status();
    assert.equal(stored.status, "processing", "the job was mid-flight when the server stopped");
    assert.ok(stored.progress > 0 && stored.progress < 100, JSON.stringify(stored));
    await within(reconnected.promise, 20000, "the client to reconnect");
    await waitFor(() => events.find((e) => e[0] === "completed" && e[1] === taskId), "TaskCompleted after the restart", 30000);
    const completed = events.find((e) => e[0] === "completed");
    assert.equal(completed[2].imageUrl, `${server.url}/media/${taskId}.svg`, "the result links to where the client went");
    assert.equal(events.some((e) => e[0] === "failed"), false);
    // The job went on from where it stopped: progress never went back.
    const progress = events.filter((e) => e[0] === "progress").map((e) => e[2]);
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b), `progress ${progress}`);
    assert.ok(progress.at(-1) > progressAtStop, `progress after the restart: ${progress}`);
    assert.equal((await status()).status, "completed");
    assert.match(server.log(), /resuming an abandoned simulated job/);
    assert.equal(connection.state, "Connected");
  } finally {
    await connection?.stop().catch(() => {});
    server.child.kill("SIGTERM");
    await Promise.race([server.exit, sleep(5000)]);
    server.child.kill("SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test("SIGINT also shuts down gracefully", async () => {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-shutdown-"));
  const server = await serve(port, dataDir);
  try {
    const connection = builder(`${server.url}/hubs/admin-notifications`, {
      transport: "WebSockets",
      accessTokenFactory: () => MASTER_KEY,
      automaticReconnect: [60000],
    }).build();
    const reconnecting = deferred();
    connection.onreconnecting((e) => reconnecting.resolve(e));
    await connection.start();
    server.child.kill("SIGINT");
    const error = await within(reconnecting.promise, 5000, "onreconnecting after SIGINT");
    assert.match(String(error?.message), /Server is shutting down/);
    const exited = await within(server.exit, 15000, "the server to exit after SIGINT");
    assert.equal(exited.code, 0, server.log());
    await connection.stop();
  } finally {
    server.child.kill("SIGKILL");
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
