// Automatic reconnect (withAutomaticReconnect) through a TCP proxy whose sockets are cut abruptly:
// the client must see onreconnecting then onreconnected, get a new connection, and work again.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  MemoryLogger,
  assertNoLeaks,
  builder,
  deferred,
  serverBehindProxy,
  signalR,
  sleep,
  waitFor,
  within,
} from "./harness.js";

const setup = serverBehindProxy();

for (const transport of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
  describe(`automatic reconnect over ${transport}`, () => {
    test("cutting every socket triggers onreconnecting/onreconnected and invocations work after", async () => {
      const logger = new MemoryLogger(signalR.LogLevel.Error);
      const connection = builder(`${setup.proxy.url}/testhub`, {
        transport,
        automaticReconnect: [0, 100, 250, 500, 1000, 1000, 1000],
        logger,
      }).build();
      const events = [];
      const reconnecting = deferred();
      const reconnected = deferred();
      const closed = deferred();
      connection.onreconnecting((error) => {
        events.push("reconnecting");
        reconnecting.resolve(error);
      });
      connection.onreconnected((id) => {
        events.push("reconnected");
        reconnected.resolve(id);
      });
      connection.onclose((error) => {
        events.push("close");
        closed.resolve(error);
      });
      const messages = [];
      connection.on("Message", (m) => {
        messages.push(m);
      });

      await connection.start();
      try {
        const firstId = connection.connectionId;
        assert.equal(await connection.invoke("GetCallerConnectionId"), firstId);
        assert.equal(await connection.invoke("GetActiveTransportName"), transport);

        const cut = setup.proxy.cut();
        assert.ok(cut > 0, "the proxy had sockets to cut");

        const error = await within(reconnecting.promise, 10000, "onreconnecting");
        if (transport === "ServerSentEvents") {
          // The SSE transport closes without an error (EventSource gives none); the client still reconnects.
          assert.equal(error, undefined);
        } else {
          assert.ok(error instanceof Error, `onreconnecting gets the transport's error, got ${error}`);
        }
        assert.equal(connection.state, signalR.HubConnectionState.Reconnecting);

        const newId = await within(reconnected.promise, 15000, "onreconnected");
        assert.equal(connection.state, signalR.HubConnectionState.Connected);
        assert.equal(newId, connection.connectionId);
        assert.notEqual(newId, firstId, "a reconnect without stateful reconnect is a new connection");
        assert.deepEqual(events, ["reconnecting", "reconnected"]);

        assert.equal(await connection.invoke("GetCallerConnectionId"), newId);
        assert.equal(await connection.invoke("Echo", "after reconnect"), "after reconnect");
        assert.equal(await connection.invoke("GetActiveTransportName"), transport);
        await connection.invoke("InvokeWithString", "event after reconnect");
        await waitFor(() => messages.includes("event after reconnect"), "the Message event after reconnecting", 5000);
        const streamed = await new Promise((resolve, reject) => {
          const items = [];
          connection.stream("Stream").subscribe({ next: (i) => items.push(i), error: reject, complete: () => resolve(items) });
        });
        assert.deepEqual(streamed, ["a", "b", "c"]);
      } finally {
        await connection.stop();
      }
      assert.equal(await within(closed.promise, 5000, "onclose"), undefined);
      assert.deepEqual(events, ["reconnecting", "reconnected", "close"]);
    });
  });
}

describe("automatic reconnect while the server is unreachable", () => {
  test("retries until the server is reachable again, then reconnects", async () => {
    const connection = builder(`${setup.proxy.url}/testhub`, {
      transport: "WebSockets",
      automaticReconnect: [0, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200],
      logger: new MemoryLogger(signalR.LogLevel.None),
    }).build();
    const reconnecting = deferred();
    const reconnected = deferred();
    connection.onreconnecting(() => reconnecting.resolve());
    connection.onreconnected((id) => reconnected.resolve(id));
    await connection.start();
    try {
      setup.proxy.refuse = true;
      const acceptedBefore = setup.proxy.accepted;
      setup.proxy.cut();
      await within(reconnecting.promise, 10000, "onreconnecting");
      // Let a few attempts fail against the "down" server.
      await waitFor(() => setup.proxy.accepted - acceptedBefore >= 3, "three refused reconnect attempts", 10000);
      assert.equal(connection.state, signalR.HubConnectionState.Reconnecting);
      setup.proxy.refuse = false;
      await within(reconnected.promise, 10000, "onreconnected after the server came back");
      assert.equal(await connection.invoke("Echo", "back"), "back");
    } finally {
      setup.proxy.refuse = false;
      await connection.stop();
    }
  });

  test("a connection whose retries run out closes", async () => {
    const connection = builder(`${setup.proxy.url}/testhub`, {
      transport: "WebSockets",
      automaticReconnect: [0, 100],
      logger: new MemoryLogger(signalR.LogLevel.None),
    }).build();
    const closed = deferred();
    connection.onclose((e) => closed.resolve(e));
    await connection.start();
    setup.proxy.refuse = true;
    try {
      setup.proxy.cut();
      // The TS client calls onclose() without an error when its retries are exhausted.
      await within(closed.promise, 10000, "onclose after retries ran out");
      assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
    } finally {
      setup.proxy.refuse = false;
    }
  });
});

describe("leak check", () => {
  test("no connections or group entries remain on /testhub", async () => {
    // A long-polling client whose poll was cut sends no DELETE: the server drops that connection when
    // it stops polling (15 s, as ASP.NET does), so allow for that.
    await sleep(0);
    await assertNoLeaks(setup.server, ["/testhub"], 25000);
  });
});
