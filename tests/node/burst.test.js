// A hub method that sends its caller a burst of events without pausing (SendSequence(n, 0)). ASP.NET
// applies backpressure, so every event arrives. Switchyard queues them per connection, bounded by bytes
// and count (signalr.max_outgoing_bytes / max_outgoing_queue): a burst well within those bounds arrives
// in full and in order on every transport; only a client that stops reading is cut off.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { MemoryLogger, assertNoLeaks, builder, signalR, sleep, startServer, within } from "./harness.js";

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.stop();
});

const BURST = 5000;

describe(`a burst of ${BURST} events to the caller arrives in full`, { concurrency: true }, () => {
  for (const [transport, protocol] of [
    ["WebSockets", "json"],
    ["WebSockets", "messagepack"],
    ["ServerSentEvents", "json"],
    ["LongPolling", "json"],
  ]) {
    test(`${transport} + ${protocol}`, async () => {
      const connection = builder(`${server.url}/testhub`, {
        transport,
        protocol,
        logger: new MemoryLogger(signalR.LogLevel.None),
      }).build();
      connection.serverTimeoutInMilliseconds = 5000;
      const seq = [];
      connection.on("Seq", (i) => {
        seq.push(Number(i));
      });
      await connection.start();
      try {
        await within(connection.invoke("SendSequence", BURST, 0), 20000, `SendSequence(${BURST}, 0)`);
        await sleep(100);
        assert.equal(seq.length, BURST);
        assert.deepEqual(seq, Array.from({ length: BURST }, (_, i) => i + 1));
      } finally {
        await connection.stop();
      }
    });
  }
});

describe("leak check", () => {
  test("no connections or group entries remain on /testhub", async () => {
    await assertNoLeaks(server, ["/testhub"]);
  });
});
