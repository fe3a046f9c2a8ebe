// Keep-alive both ways, with short timers: the server pings every second (keep_alive_seconds = 1) and
// drops a client it has not heard from in 3 s (client_timeout_seconds = 3). A client that pings keeps
// an idle connection; one that does not is closed by the server with ASP.NET's error text.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { MemoryLogger, assertNoLeaks, builder, deferred, signalR, sleep, startServer, within } from "./harness.js";

let server;

before(async () => {
  server = await startServer({
    env: {
      SWITCHYARD__SIGNALR__KEEP_ALIVE_SECONDS: "1",
      SWITCHYARD__SIGNALR__CLIENT_TIMEOUT_SECONDS: "3",
    },
  });
});

after(async () => {
  if (server) await server.stop();
});

const IDLE_MS = 4500;

describe("an idle connection survives on server pings and client pings", { concurrency: true }, () => {
  for (const [transport, protocol] of [
    ["WebSockets", "json"],
    ["WebSockets", "messagepack"],
    ["ServerSentEvents", "json"],
    ["LongPolling", "json"],
  ]) {
    test(`${transport} + ${protocol}`, async () => {
      const logger = new MemoryLogger(signalR.LogLevel.Warning);
      const connection = builder(`${server.url}/testhub`, { transport, protocol, logger }).build();
      // The client gives up if it hears nothing from the server for 2.5 s (server pings every 1 s),
      // and pings every 0.5 s itself (the server gives up after 3 s).
      connection.serverTimeoutInMilliseconds = 2500;
      connection.keepAliveIntervalInMilliseconds = 500;
      const closed = deferred();
      connection.onclose((e) => closed.resolve(e ?? "closed without error"));
      await connection.start();
      try {
        const id = await connection.invoke("GetCallerConnectionId");
        const outcome = await Promise.race([closed.promise, sleep(IDLE_MS).then(() => "still open")]);
        assert.equal(outcome, "still open", `the idle connection was closed: ${outcome}`);
        assert.equal(connection.state, signalR.HubConnectionState.Connected);
        assert.equal(await connection.invoke("GetCallerConnectionId"), id, "same connection after idling");
        assert.deepEqual(logger.lines, []);
      } finally {
        await connection.stop();
      }
    });
  }
});

describe("a silent client is dropped by the server", () => {
  const silent = (opts = {}) => {
    const connection = builder(`${server.url}/testhub`, {
      transport: "WebSockets",
      logger: new MemoryLogger(signalR.LogLevel.None),
      ...opts,
    }).build();
    connection.keepAliveIntervalInMilliseconds = 60000; // never pings within the test
    connection.serverTimeoutInMilliseconds = 120000;
    return connection;
  };

  test("after client_timeout, a Close with no error (as ASP.NET): onclose() gets no error", async () => {
    const connection = silent();
    const closed = deferred();
    connection.onclose((e) => closed.resolve(e));
    await connection.start();
    const started = Date.now();
    const error = await within(closed.promise, 10000, "the server to close the silent connection");
    const elapsed = Date.now() - started;
    assert.equal(error, undefined, `ASP.NET closes a timed-out client without an error; got: ${error}`);
    assert.ok(elapsed >= 2500 && elapsed < 6000, `closed after ${elapsed} ms (client timeout 3 s)`);
  });

  test("that Close allows reconnecting: withAutomaticReconnect reconnects", async () => {
    const connection = silent({ automaticReconnect: [0, 100, 500] });
    const reconnecting = deferred();
    const reconnected = deferred();
    connection.onreconnecting((e) => reconnecting.resolve(e));
    connection.onreconnected((id) => reconnected.resolve(id));
    await connection.start();
    const firstId = connection.connectionId;
    try {
      assert.equal(await within(reconnecting.promise, 10000, "onreconnecting after the server timeout"), undefined);
      const id = await within(reconnected.promise, 10000, "onreconnected");
      assert.notEqual(id, firstId);
      assert.equal(await connection.invoke("Echo", "back"), "back");
    } finally {
      await connection.stop();
    }
  });
});

describe("leak check", () => {
  test("no connections or group entries remain on /testhub", async () => {
    await assertNoLeaks(server, ["/testhub"]);
  });
});
