// Shared test harness: starts the real switchyard binary on a free port with the conformance hubs,
// builds @microsoft/signalr connections to it, a TCP proxy that can cut sockets, and the leak check.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

export { signalR };

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "..", "..");
export const MASTER_KEY = "sy-client-tests-master-key-0123456789";

export function binaryPath() {
  return process.env.SWITCHYARD_BIN || path.join(repoRoot, "target", "debug", "switchyard");
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves when `check()` returns a truthy value; rejects with `what` after `timeoutMs`. */
export async function waitFor(check, what, timeoutMs = 10000, everyMs = 25) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    }
    await sleep(everyMs);
  }
}

/** A promise with its resolve/reject exposed. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects with `what` if `promise` does not settle in `ms`. */
export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `switchyard serve` with the conformance profile on a free port, in a fresh data dir.
 * Returns { url, port, stop(), stats(), log() }.
 */
export async function startServer({ env = {} } = {}) {
  const bin = binaryPath();
  if (!fs.existsSync(bin)) {
    throw new Error(`switchyard binary not found at ${bin} (build it, or set SWITCHYARD_BIN)`);
  }
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-client-tests-"));
  const logLines = [];
  const serverEnv = {
    ...process.env,
    SWITCHYARD__SIGNALR__CONFORMANCE: "true",
    CONDUIT_MASTER_KEY: MASTER_KEY,
    SWITCHYARD__SERVER__DATA_DIR: dataDir,
    SWITCHYARD__SERVER__WORKERS: "2",
    ...env,
  };
  const child = spawn(bin, ["serve", "--bind", `127.0.0.1:${port}`], {
    cwd: repoRoot,
    env: serverEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (chunk) => {
    for (const line of chunk.toString().split("\n")) {
      if (line) logLines.push(line);
    }
    if (logLines.length > 4000) logLines.splice(0, logLines.length - 4000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  const exit = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`switchyard exited early (${JSON.stringify(exited)}):\n${logLines.join("\n")}`);
      const res = await fetch(`${url}/health/live`).catch(() => null);
      return res && res.status === 200;
    }, "GET /health/live to answer 200", 30000, 50);
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return {
    url,
    port,
    log: () => logLines.join("\n"),
    /** Runs `switchyard ARGS…` (e.g. `keys create`) as another process on this server's database. */
    cli(args) {
      return new Promise((resolve, reject) => {
        const run = spawn(bin, args, { cwd: repoRoot, env: { ...serverEnv, RUST_LOG: "warn" }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        run.stdout.on("data", (c) => (stdout += c));
        run.stderr.on("data", (c) => (stderr += c));
        run.on("error", reject);
        run.on("exit", (code) => resolve({ code, stdout, stderr }));
      });
    },
    async stats() {
      const res = await fetch(`${url}/api/stats`, { headers: { "X-API-Key": MASTER_KEY } });
      if (res.status !== 200) {
        throw new Error(`GET /api/stats answered ${res.status}: ${await res.text()}`);
      }
      return res.json();
    },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const done = await Promise.race([exit, sleep(3000).then(() => null)]);
        if (!done) {
          child.kill("SIGKILL");
          await exit;
        }
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until /api/stats reports no connections and no group entries on the given hubs
 * (cleanup is asynchronous, so this polls for a few seconds), and throws with the last stats if not.
 */
export async function assertNoLeaks(server, hubs = ["/testhub"], timeoutMs = 5000) {
  let last;
  const clean = (stats) =>
    hubs.every((p) => {
      const hub = (stats.hubs || []).find((h) => h.path === p);
      return hub && hub.connections === 0 && hub.groupEntries === 0;
    });
  try {
    await waitFor(async () => {
      last = await server.stats();
      return clean(last);
    }, "no connections and no group entries", timeoutMs, 100);
  } catch (e) {
    throw new Error(`leak check on ${hubs.join(", ")} failed: ${e.message}\nlast /api/stats: ${JSON.stringify(last)}`);
  }
}

export const TRANSPORTS = {
  WebSockets: signalR.HttpTransportType.WebSockets,
  ServerSentEvents: signalR.HttpTransportType.ServerSentEvents,
  LongPolling: signalR.HttpTransportType.LongPolling,
};

/** Every transport × protocol combination the TS client supports, plus skipNegotiation on WebSockets. */
export const COMBOS = [
  { name: "WebSockets + JSON", transport: "WebSockets", protocol: "json" },
  { name: "WebSockets + JSON (skipNegotiation)", transport: "WebSockets", protocol: "json", skipNegotiation: true },
  { name: "ServerSentEvents + JSON", transport: "ServerSentEvents", protocol: "json" },
  { name: "LongPolling + JSON", transport: "LongPolling", protocol: "json" },
  { name: "WebSockets + MessagePack", transport: "WebSockets", protocol: "messagepack" },
  {
    name: "WebSockets + MessagePack (skipNegotiation)",
    transport: "WebSockets",
    protocol: "messagepack",
    skipNegotiation: true,
  },
  { name: "LongPolling + MessagePack", transport: "LongPolling", protocol: "messagepack" },
];

/** Collects the client's log lines (warnings and up) so failures can show what the client saw. */
export class MemoryLogger {
  constructor(level = signalR.LogLevel.Warning) {
    this.level = level;
    this.lines = [];
  }
  log(level, message) {
    if (level >= this.level) this.lines.push(`[${signalR.LogLevel[level]}] ${message}`);
  }
}

/**
 * A HubConnectionBuilder for `url`. Options: transport (name), protocol ("json" | "messagepack"),
 * skipNegotiation, accessTokenFactory, headers, logger, automaticReconnect (array of delays or true),
 * statefulReconnect.
 */
export function builder(url, opts = {}) {
  const httpOptions = {};
  if (opts.transport) httpOptions.transport = TRANSPORTS[opts.transport];
  if (opts.skipNegotiation) httpOptions.skipNegotiation = true;
  if (opts.accessTokenFactory) httpOptions.accessTokenFactory = opts.accessTokenFactory;
  if (opts.headers) httpOptions.headers = opts.headers;
  let b = new signalR.HubConnectionBuilder()
    .withUrl(url, httpOptions)
    .configureLogging(opts.logger || new MemoryLogger());
  if (opts.protocol === "messagepack") b = b.withHubProtocol(new MessagePackHubProtocol());
  if (opts.automaticReconnect) {
    b = Array.isArray(opts.automaticReconnect)
      ? b.withAutomaticReconnect(opts.automaticReconnect)
      : b.withAutomaticReconnect();
  }
  if (opts.statefulReconnect) b = b.withStatefulReconnect();
  return b;
}

/**
 * A TCP proxy on a free port forwarding to 127.0.0.1:targetPort. `cut()` destroys every proxied
 * socket pair abruptly (TCP RST, no WebSocket close frame); new connections are accepted afterwards.
 * `refuse = true` makes it reset new connections at once (a server that is "down"); `delayMs` holds
 * new connections that long before forwarding them (the client stays away meanwhile).
 */
export async function startProxy(targetPort) {
  const pairs = new Set();
  const proxy = {
    port: 0,
    refuse: false,
    /** Milliseconds to hold each new connection before it is forwarded. */
    delayMs: 0,
    accepted: 0,
    /** First request line seen on each proxied socket, e.g. "GET /testhub?id=... HTTP/1.1". */
    requests: [],
    cut() {
      const n = pairs.size;
      for (const pair of pairs) {
        for (const s of pair) {
          if (typeof s.resetAndDestroy === "function" && s._handle) s.resetAndDestroy();
          else s.destroy();
        }
      }
      pairs.clear();
      return n;
    },
    get open() {
      return pairs.size;
    },
  };
  const server = net.createServer((client) => {
    proxy.accepted++;
    if (proxy.refuse) {
      client.resetAndDestroy();
      return;
    }
    if (proxy.delayMs > 0) {
      // A slow network: hold the new socket (its bytes wait in the kernel) before connecting upstream.
      client.pause();
      client.on("error", () => client.destroy());
      setTimeout(() => (client.destroyed ? undefined : forward(client)), proxy.delayMs);
      return;
    }
    forward(client);
  });
  const forward = (client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    const pair = [client, upstream];
    client.once("data", (chunk) => {
      proxy.requests.push(chunk.toString("latin1").split("\r\n", 1)[0]);
    });
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  };
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.port = server.address().port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  proxy.close = () =>
    new Promise((resolve) => {
      proxy.cut();
      server.close(() => resolve());
    });
  return proxy;
}

/**
 * For a test file whose clients reach the server through a {@link startProxy} proxy (to cut their
 * sockets): registers hooks that start a server (`startServer(options)`) and a proxy in front of it before
 * the file's tests, and close both after them. Returns `{ server, proxy }`, filled in once started.
 */
export function serverBehindProxy(options) {
  const setup = { server: undefined, proxy: undefined };
  before(async () => {
    setup.server = await startServer(options);
    setup.proxy = await startProxy(setup.server.port);
  });
  after(async () => {
    if (setup.proxy) await setup.proxy.close();
    if (setup.server) await setup.server.stop();
  });
  return setup;
}

/** The `connectionId` of a started connection (what servers address), checked to be non-empty. */
/** Headless Chromium from the system (Debian's `chromium`, or CHROMIUM_PATH), driven by playwright-core. */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
  });
}

export function connectionIdOf(connection) {
  const id = connection.connectionId;
  if (!id) throw new Error("connection has no connectionId");
  return id;
}
