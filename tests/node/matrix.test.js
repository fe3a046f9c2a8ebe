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

    test("structured objects round-trip (SendCustomObject, EchoComplexObject)", async () => {
      const got = deferred();
      connection.on("CustomObject", (o) => got.resolve(o));
      try {
        await connection.send("SendCustomObject", { Name: "test", Value: 42 });
        assert.deepEqual(await within(got.promise, 5000, "the CustomObject event"), { Name: "test", Value: 42 });
      } finally {
        connection.off("CustomObject");
      }
      const complex = { String: "hello", IntArray: [1, 2, 3], Nested: { a: null, b: true, c: 1.5 } };
      assert.deepEqual(await connection.invoke("EchoComplexObject", complex), complex);
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
