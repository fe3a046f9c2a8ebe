// Every transport × protocol the official TypeScript client supports, against /testhub:
// invocations (result, void, error), send, server streams (and their cancellation), upload streams,
// client results and the active transport's name.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  COMBOS,
  assertNoLeaks,
  builder,
  deferred,
  signalR,
  startServer,
  within,
} from "./harness.js";

const UNICODE = "你好，世界！ ✓ \u{1F600}";

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) await server.stop();
});

// SY_COMBO=<substring> runs only the matching combinations (for debugging).
const only = process.env.SY_COMBO;
for (const combo of COMBOS.filter((c) => !only || c.name.includes(only))) {
  describe(combo.name, () => {
    let connection;
    let closed;
    const logger = { lines: [], log(level, msg) { if (level >= signalR.LogLevel.Warning) this.lines.push(msg); } };

    before(async () => {
      connection = builder(`${server.url}/testhub`, { ...combo, logger, headers: { "X-Switchyard-Test": "matrix" } }).build();
      closed = deferred();
      connection.onclose((error) => closed.resolve(error));
      await within(connection.start(), 10000, `start over ${combo.name}`);
    });

    after(async () => {
      if (!connection) return;
      await connection.stop();
      const error = await within(closed.promise, 5000, "onclose after stop()");
      assert.equal(error, undefined, `onclose after stop() should carry no error; got ${error}`);
      assert.deepEqual(logger.lines, [], "the client logged warnings or errors");
    });

    test("is connected", () => {
      assert.equal(connection.state, signalR.HubConnectionState.Connected);
    });

    test("GetActiveTransportName names the transport in use", async () => {
      assert.equal(await connection.invoke("GetActiveTransportName"), combo.transport);
    });

    test("invoke Echo returns the argument", async () => {
      assert.equal(await connection.invoke("Echo", UNICODE), UNICODE);
      assert.equal(await connection.invoke("echo", "case-insensitive method names"), "case-insensitive method names");
    });

    test("invoke of a void method resolves with undefined, after the messages it sent", async () => {
      const got = [];
      const handler = (m) => { got.push(m); };
      connection.on("Message", handler);
      try {
        const result = await connection.invoke("InvokeWithString", "void-call");
        assert.equal(result, undefined);
        assert.deepEqual(got, ["void-call"], "Message must arrive before the Completion");
      } finally {
        connection.off("Message", handler);
      }
    });

    test("send is fire-and-forget; the Message event arrives (handler names are case-insensitive)", async () => {
      const got = deferred();
      const handler = (m) => got.resolve(m);
      connection.on("mEsSaGe", handler);
      try {
        const sent = await connection.send("InvokeWithString", UNICODE);
        assert.equal(sent, undefined);
        assert.equal(await within(got.promise, 5000, "the Message event"), UNICODE);
      } finally {
        connection.off("mEsSaGe", handler);
      }
    });

    // ASP.NET's functional-test server binds these to .NET types and sends them back with their members'
    // own (PascalCase) names on both protocols; byte[] and DateTime travel as base64 / ISO-8601 strings in
    // JSON and as MessagePack bin / timestamps, which the msgpack client turns into Uint8Array / Date.
    const msgpack = combo.protocol === "messagepack";
    const bytes = (array, base64) => (msgpack ? new Uint8Array(array) : base64);
    const instant = (ms, iso) => (msgpack ? new Date(ms) : iso);

    test("SendCustomObject sends back the bound CustomObject (official: structural object)", async () => {
      for (const [sent, expected] of [
        [{ Name: "test", Value: 42 }, { Name: "test", Value: 42 }],
        // Bound like a .NET parameter: unknown members dropped, missing ones take their defaults.
        [{ Name: "partial", Extra: [1, 2] }, { Name: "partial", Value: 0 }],
      ]) {
        const got = deferred();
        connection.on("CustomObject", (o) => got.resolve(o));
        try {
          await connection.send("SendCustomObject", sent);
          assert.deepEqual(await within(got.promise, 5000, "the CustomObject event"), expected);
        } finally {
          connection.off("CustomObject");
        }
      }
    });

    test("EchoComplexObject returns the object unchanged (official: can handle different types)", async () => {
      const complexObject = {
        ByteArray: bytes([0x68, 0x65, 0x6c, 0x6c, 0x6f], "aGVsbG8="),
        DateTime: instant(Date.UTC(2002, 3, 1, 10, 20, 15), "2002-04-01T10:20:15Z"),
        Guid: "00010203-0405-0607-0706-050403020100",
        IntArray: [0x01, 0x02, 0x03, 0xff],
        String: "Hello, World!",
      };
      const value = await connection.invoke("EchoComplexObject", complexObject);
      assert.deepEqual(value, complexObject);
      if (msgpack) {
        assert.ok(value.ByteArray instanceof Uint8Array, "byte[] arrives as a Uint8Array");
        assert.ok(value.DateTime instanceof Date, "DateTime arrives as a Date");
      }
    });

    test("EchoComplexObject keeps milliseconds, early dates and larger byte arrays", async () => {
      const big = Array.from({ length: 1000 }, (_, i) => i % 256);
      for (const [ms, iso] of [
        [Date.UTC(2002, 3, 1, 10, 20, 15, 123), "2002-04-01T10:20:15.123Z"], // MessagePack timestamp 64
        [Date.UTC(1969, 11, 31, 23, 59, 59, 500), "1969-12-31T23:59:59.5Z"], // timestamp 96 (before 1970)
        [Date.UTC(2200, 0, 1), "2200-01-01T00:00:00Z"], // seconds past 32 bits
      ]) {
        const complexObject = {
          ByteArray: bytes(big, Buffer.from(big).toString("base64")),
          DateTime: instant(ms, iso),
          Guid: "00010203-0405-0607-0706-050403020100",
          IntArray: [-1, 2147483647],
          String: "",
        };
        assert.deepEqual(await connection.invoke("EchoComplexObject", complexObject), complexObject, iso);
      }
    });

    test("EchoComplexObject binds like .NET: missing members default, wrong types are a binding error", async () => {
      const value = await connection.invoke("EchoComplexObject", { String: "only this", Unknown: true });
      assert.equal(value.String, "only this");
      assert.equal(value.IntArray, null);
      assert.equal(value.ByteArray, null);
      assert.equal(value.Guid, "00000000-0000-0000-0000-000000000000");
      assert.equal("Unknown" in value, false);
      await assert.rejects(connection.invoke("EchoComplexObject", { IntArray: "not an array" }), {
        message:
          "Failed to invoke 'EchoComplexObject' due to an error on the server. InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked.",
      });
    });

    test("SendComplexObject returns ASP.NET's object (official: can receive different types)", async () => {
      const value = await connection.invoke("SendComplexObject");
      assert.deepEqual(value, {
        ByteArray: bytes([0x1, 0x2, 0x3], "AQID"),
        DateTime: instant(Date.UTC(2000, 0, 1), "2000-01-01T00:00:00Z"),
        Guid: "00010203-0405-0607-0706-050403020100",
        IntArray: [0x01, 0x02, 0x03],
        String: "hello world",
      });
      if (msgpack) {
        assert.ok(value.ByteArray instanceof Uint8Array, "byte[] arrives as a Uint8Array");
        assert.ok(value.DateTime instanceof Date, "DateTime arrives as a Date");
      } else {
        assert.equal(typeof value.ByteArray, "string");
        assert.equal(typeof value.DateTime, "string");
      }
    });

    test("a server exception becomes the exact detailed error", async () => {
      await assert.rejects(connection.invoke("ThrowException", "An error occurred."), {
        message: "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: An error occurred.",
      });
      // The connection survives the error.
      assert.equal(await connection.invoke("Echo", "still here"), "still here");
    });

    test("an unknown method gives the exact HubException text", async () => {
      await assert.rejects(connection.invoke("NoSuchMethod", 1), {
        message: "Failed to invoke 'NoSuchMethod' due to an error on the server. HubException: Method does not exist.",
      });
    });

    test("invoking a streaming method with invoke() is refused with ASP.NET's text", async () => {
      await assert.rejects(connection.invoke("Stream"), {
        message: "The client attempted to invoke the streaming 'Stream' method with a non-streaming invocation.",
      });
    });

    test("streaming a non-streaming method is refused with ASP.NET's text", async () => {
      const err = await collectStream(connection.stream("Echo", "42")).then(
        () => null,
        (e) => e,
      );
      assert.ok(err, "stream of Echo should error");
      assert.equal(err.message, "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation.");
    });

    test("server stream yields a, b, c then completes", async () => {
      assert.deepEqual(await collectStream(connection.stream("Stream")), ["a", "b", "c"]);
    });

    test("an empty server stream completes with no items", async () => {
      assert.deepEqual(await collectStream(connection.stream("EmptyStream")), []);
    });

    test("a server stream that throws errors with the exact text", async () => {
      const err = await collectStream(connection.stream("StreamThrowException", "An error occurred.")).then(
        () => null,
        (e) => e,
      );
      assert.ok(err, "StreamThrowException should error");
      assert.equal(
        err.message,
        "An unexpected error occurred invoking 'StreamThrowException' on the server. InvalidOperationException: An error occurred.",
      );
    });

    test("disposing an InfiniteStream subscription cancels it on the server (StreamCanceled)", async () => {
      const canceled = deferred();
      connection.on("StreamCanceled", () => canceled.resolve());
      try {
        const events = [];
        const subscription = connection.stream("InfiniteStream").subscribe({
          next: (i) => events.push(["next", i]),
          error: (e) => events.push(["error", e.message]),
          complete: () => events.push(["complete"]),
        });
        // As the ASP.NET functional tests do: dispose right away.
        subscription.dispose();
        await within(canceled.promise, 5000, "the StreamCanceled event");
        assert.deepEqual(events, [], "a disposed subscription gets no further callbacks");
      } finally {
        connection.off("StreamCanceled");
      }
    });

    test("disposing an InfiniteStream subscription after it has started cancels it (StreamCanceled)", async () => {
      const canceled = deferred();
      connection.on("StreamCanceled", () => canceled.resolve());
      try {
        const subscription = connection.stream("InfiniteStream").subscribe({ next() {}, error() {}, complete() {} });
        // Make sure the server has started the stream: a round trip after the StreamInvocation.
        assert.equal(await connection.invoke("Echo", "barrier"), "barrier");
        subscription.dispose();
        await within(canceled.promise, 5000, "the StreamCanceled event");
      } finally {
        connection.off("StreamCanceled");
      }
    });

    test("upload stream: StreamingConcat joins the items of a Subject", async () => {
      const subject = new signalR.Subject();
      const result = connection.invoke("StreamingConcat", subject);
      for (const piece of ["Hello", " ", "stream", "ing ", "世界"]) {
        subject.next(piece);
        await new Promise((r) => setTimeout(r, 5));
      }
      subject.complete();
      assert.equal(await within(result, 5000, "StreamingConcat result"), "Hello streaming 世界");
    });

    test("upload stream: an empty Subject gives an empty string", async () => {
      const subject = new signalR.Subject();
      const result = connection.invoke("StreamingConcat", subject);
      subject.complete();
      assert.equal(await within(result, 5000, "StreamingConcat result"), "");
    });

    test("client result: GET /clientresult/{id} answers with what the Result handler returned", async () => {
      const id = await connection.invoke("GetCallerConnectionId");
      assert.ok(typeof id === "string" && id.length > 0, `GetCallerConnectionId gave ${id}`);
      if (!combo.skipNegotiation) assert.equal(id, connection.connectionId, "connectionId from negotiate");
      let calls = 0;
      connection.on("Result", () => {
        calls++;
        return 42;
      });
      try {
        const res = await within(fetch(`${server.url}/clientresult/${encodeURIComponent(id)}`), 10000, "GET /clientresult");
        const body = await res.text();
        assert.equal(res.status, 200, `GET /clientresult answered ${res.status}: ${body}`);
        assert.equal(body, "42");
        assert.equal(calls, 1);
      } finally {
        connection.off("Result");
      }
    });

    test("client result: an async handler's value comes back too", async () => {
      const id = await connection.invoke("GetCallerConnectionId");
      connection.on("Result", async () => {
        await new Promise((r) => setTimeout(r, 20));
        return "from-client";
      });
      try {
        const res = await within(fetch(`${server.url}/clientresult/${encodeURIComponent(id)}`), 10000, "GET /clientresult");
        const body = await res.text();
        assert.equal(res.status, 200, `GET /clientresult answered ${res.status}: ${body}`);
        assert.equal(body, "from-client");
      } finally {
        connection.off("Result");
      }
    });

    test("request details reach the hub: a custom header, and the cookies set on negotiate", async () => {
      // Node's client sends `headers` on every request, WebSockets included.
      assert.equal(await connection.invoke("GetHeader", "X-Switchyard-Test"), "matrix");
      assert.equal(await connection.invoke("GetHeader", "X-Not-Sent"), null);
      // In Node the client names itself in User-Agent (X-SignalR-User-Agent is for browsers).
      assert.match(await connection.invoke("GetHeader", "User-Agent"), /^Microsoft SignalR\/10\./);
      if (!combo.skipNegotiation) {
        // The conformance server sets testCookie (and an expired one) on negotiate; the client's cookie
        // jar sends it back on the transport's request.
        assert.equal(await connection.invoke("GetCookie", "testCookie"), "testValue");
        assert.equal(await connection.invoke("GetCookie", "expiredCookie"), null);
      }
    });

    test("client result: a throwing handler and a missing handler come back as errors", async () => {
      const id = await connection.invoke("GetCallerConnectionId");
      const url = `${server.url}/clientresult/${encodeURIComponent(id)}`;
      connection.on("Result", () => {
        throw new Error("nope");
      });
      try {
        const res = await within(fetch(url), 10000, "GET /clientresult");
        assert.equal(await res.text(), "Error: nope");
      } finally {
        connection.off("Result");
      }
      // No handler at all: the client answers "Client didn't provide a result." (and logs a warning).
      const res = await within(fetch(url), 10000, "GET /clientresult");
      assert.equal(await res.text(), "Client didn't provide a result.");
      logger.lines = logger.lines.filter((l) => !/'result'/.test(l));
    });

    test("many concurrent invocations each resolve with their own result", async () => {
      const inputs = Array.from({ length: 50 }, (_, i) => `msg-${i}`);
      const results = await within(Promise.all(inputs.map((m) => connection.invoke("Echo", m))), 10000, "50 invocations");
      assert.deepEqual(results, inputs);
    });
  });
}

describe("/testhub-nowebsockets", () => {
  test("the default client falls back from WebSockets to Server-Sent Events and works", async () => {
    const connection = builder(`${server.url}/testhub-nowebsockets`).build();
    await connection.start();
    try {
      assert.equal(await connection.invoke("GetActiveTransportName"), "ServerSentEvents");
      assert.equal(await connection.invoke("Echo", "x"), "x");
    } finally {
      await connection.stop();
    }
  });
});

describe("/testhub-nowebsockets with MessagePack", () => {
  test("the default client skips Server-Sent Events (text only) and uses long polling", async () => {
    const connection = builder(`${server.url}/testhub-nowebsockets`, { protocol: "messagepack" }).build();
    await connection.start();
    try {
      assert.equal(await connection.invoke("GetActiveTransportName"), "LongPolling");
      assert.equal(await connection.invoke("Echo", "x"), "x");
    } finally {
      await connection.stop();
    }
  });
});

describe("leak check", () => {
  test("no connections or group entries remain on the test hubs", async () => {
    await assertNoLeaks(server, ["/testhub", "/testhub-nowebsockets"]);
  });
});

/** Subscribes to a client stream and resolves with its items (or rejects with its error). */
function collectStream(stream, ms = 5000) {
  const items = [];
  const done = new Promise((resolve, reject) => {
    stream.subscribe({
      next: (i) => items.push(i),
      error: (e) => reject(e),
      complete: () => resolve(items),
    });
  });
  return within(done, ms, "the stream to complete");
}
