// Stateful reconnect (withStatefulReconnect) on WebSockets through a TCP proxy whose sockets are
// destroyed abruptly (RST, no close frame) in the middle of a stream of numbered events: the client
// reconnects on its own with the same connection id, and nothing is lost or delivered twice, in either
// direction.
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

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The `id=` of the WebSocket requests the proxy saw, in order. */
function webSocketIds(requests) {
  return requests
    .filter((line) => line.startsWith("GET /testhub?"))
    .map((line) => new URLSearchParams(line.split(" ")[1].split("?")[1]).get("id"));
}

for (const protocol of ["json", "messagepack"]) {
  describe(`stateful reconnect over WebSockets + ${protocol === "json" ? "JSON" : "MessagePack"}`, () => {
    test("a cut mid-stream loses and repeats nothing (Seq 1..200; Echo while cut resolves once each)", async () => {
      const logger = new MemoryLogger(signalR.LogLevel.Error);
      const connection = builder(`${setup.proxy.url}/testhub`, {
        transport: "WebSockets",
        protocol,
        statefulReconnect: true,
        logger,
      }).build();
      const events = [];
      connection.onreconnecting(() => events.push("reconnecting"));
      connection.onreconnected(() => events.push("reconnected"));
      const closed = deferred();
      connection.onclose((e) => {
        events.push("close");
        closed.resolve(e);
      });
      const seq = [];
      connection.on("Seq", (i) => {
        seq.push(Number(i));
      });

      const requestsBefore = setup.proxy.requests.length;
      await connection.start();
      try {
        const id = connection.connectionId;
        assert.equal(await connection.invoke("GetCallerConnectionId"), id);

        const done = connection.invoke("SendSequence", 200, 10);
        await waitFor(() => seq.length >= 50, "the first 50 Seq events", 10000, 5);

        // First cut: invocations made at once and a little later, while the client is reconnecting.
        assert.ok(setup.proxy.cut() > 0, "the proxy had sockets to cut");
        const echoes = [];
        const settled = new Map();
        const echo = (text) => {
          const p = connection.invoke("Echo", text).then(
            (v) => {
              settled.set(text, (settled.get(text) || 0) + 1);
              return v;
            },
            (e) => {
              settled.set(text, (settled.get(text) || 0) + 1);
              throw e;
            },
          );
          echoes.push([text, p]);
        };
        echo("during-cut-1");
        echo("during-cut-2");
        await sleep(30);
        echo("during-cut-3");

        // Second cut, later in the sequence.
        await waitFor(() => seq.length >= 120, "Seq events to reach 120 after the first cut", 15000, 5);
        assert.ok(setup.proxy.cut() > 0, "the proxy had sockets to cut the second time");
        echo("during-cut-4");
        await sleep(50);
        echo("during-cut-5");

        assert.equal(await within(done, 20000, "SendSequence to complete"), undefined);
        for (const [text, p] of echoes) {
          assert.equal(await within(p, 10000, `Echo(${text})`), text);
        }
        await sleep(300); // anything duplicated would have arrived by now
        for (const [text] of echoes) assert.equal(settled.get(text), 1, `Echo(${text}) settled once`);

        assert.equal(seq.length, 200, `expected 200 Seq events, got ${seq.length}`);
        assert.deepEqual(seq, range(1, 200), "Seq events are exactly 1..200 in order");

        // Same connection: same id, no HubConnection-level reconnect, and the transport came back on
        // the same id (the proxy saw the WebSocket request three times with one id, and one negotiate).
        assert.equal(connection.connectionId, id);
        assert.equal(connection.state, signalR.HubConnectionState.Connected);
        assert.equal(await connection.invoke("GetCallerConnectionId"), id);
        assert.deepEqual(events, []);
        const seen = setup.proxy.requests.slice(requestsBefore);
        const wsIds = webSocketIds(seen);
        assert.equal(wsIds.length, 3, `three WebSocket requests (first + two reconnects): ${JSON.stringify(seen)}`);
        assert.equal(new Set(wsIds).size, 1, "every WebSocket request used the same id");
        assert.equal(seen.filter((l) => l.includes("/negotiate")).length <= 1, true, "no second negotiate");
        assert.deepEqual(logger.lines, []);
      } finally {
        await connection.stop();
      }
      assert.equal(await within(closed.promise, 5000, "onclose"), undefined);
    });

    test("what the server sends while the client is away is replayed when it comes back", async () => {
      const connection = builder(`${setup.proxy.url}/testhub`, {
        transport: "WebSockets",
        protocol,
        statefulReconnect: true,
        logger: new MemoryLogger(signalR.LogLevel.Error),
      }).build();
      const seq = [];
      connection.on("Seq", (i) => {
        seq.push(Number(i));
      });
      await connection.start();
      try {
        const id = connection.connectionId;
        const done = connection.invoke("SendSequence", 300, 5);
        await waitFor(() => seq.length >= 20, "the first 20 Seq events", 10000, 1);
        // Hold the reconnect for 1.5 s: the server keeps sending into its replay buffer meanwhile.
        setup.proxy.delayMs = 1500;
        setup.proxy.cut();
        const atCut = seq.length;
        await sleep(700);
        assert.ok(seq.length - atCut <= 1, "nothing arrives while the client is away");
        await within(done, 20000, "SendSequence(300, 5) to complete");
        await waitFor(() => seq.length >= 300, "300 Seq events", 10000);
        await sleep(200);
        assert.deepEqual(seq, range(1, 300));
        assert.equal(await connection.invoke("GetCallerConnectionId"), id);
      } finally {
        setup.proxy.delayMs = 0;
        await connection.stop();
      }
    });
  });
}

describe("leak check", () => {
  test("no connections or group entries remain on /testhub", async () => {
    await assertNoLeaks(setup.server, ["/testhub"]);
  });
});
