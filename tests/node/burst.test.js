// A hub method that sends its caller a burst of events without pausing (SendSequence(n, 0)). ASP.NET
// applies backpressure (SendAsync waits for the transport), so every event arrives. Switchyard queues
// at most signalr.max_outgoing_queue (1024) frames per connection and closes the connection as a slow
// consumer beyond that, even for a fast local client; on WebSockets no Close frame goes out and the
// client only notices at its server timeout. Marked TODO (reported, not failing the suite) until
// sends to a connection apply backpressure.
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

const TODO = "a burst over max_outgoing_queue (1024) frames closes the connection as a slow consumer";

describe("a burst of 2000 events to the caller arrives in full", { concurrency: true }, () => {
  for (const [transport, protocol] of [
    ["WebSockets", "json"],
    ["WebSockets", "messagepack"],
    ["ServerSentEvents", "json"],
    ["LongPolling", "json"],
  ]) {
    test(`${transport} + ${protocol}`, { todo: TODO }, async () => {
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
        await within(connection.invoke("SendSequence", 2000, 0), 15000, "SendSequence(2000, 0)");
        await sleep(100);
        assert.equal(seq.length, 2000);
        assert.deepEqual(seq, Array.from({ length: 2000 }, (_, i) => i + 1));
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
