// /authorizedhub from Node: the JWT from /generateJwtToken through accessTokenFactory on every
// transport and protocol; no token or a bad token is refused with 401 at negotiate (and on a
// skipNegotiation WebSocket).
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";

import { COMBOS, MemoryLogger, assertNoLeaks, builder, signalR, startServer } from "./harness.js";

let server;
let token;

before(async () => {
  server = await startServer();
  const res = await fetch(`${server.url}/generateJwtToken`);
  assert.equal(res.status, 200);
  token = await res.text();
});

after(async () => {
  if (server) await server.stop();
});

describe("/authorizedhub with a token", () => {
  for (const combo of COMBOS) {
    test(combo.name, async () => {
      let calls = 0;
      const connection = builder(`${server.url}/authorizedhub`, {
        ...combo,
        accessTokenFactory: () => {
          calls++;
          return token;
        },
      }).build();
      await connection.start();
      try {
        assert.equal(await connection.invoke("Echo", "authorized"), "authorized");
        assert.equal(await connection.invoke("GetUserNameIdentifier"), "testuser");
        assert.equal(await connection.invoke("GetUserClaim", "aud"), "SignalRTests");
        assert.equal(await connection.invoke("GetActiveTransportName"), combo.transport);
        // The token is never shown to the hub as a header or query value it could leak.
        assert.equal(await connection.invoke("GetHeader", "Authorization"), null);
        assert.ok(calls >= 1);
      } finally {
        await connection.stop();
      }
    });
  }
});

describe("/authorizedhub without a valid token", () => {
  test("negotiate without a token: 401 with an empty body", async () => {
    const res = await fetch(`${server.url}/authorizedhub/negotiate?negotiateVersion=1`, { method: "POST" });
    assert.equal(res.status, 401);
    assert.equal(await res.text(), "");
  });

  for (const [what, factory] of [
    ["no token", undefined],
    ["a malformed token", () => "not-a-jwt"],
    ["a token with a forged signature", () => token.slice(0, token.lastIndexOf(".") + 1) + "AAAA" + token.slice(-10)],
  ]) {
    test(`the client's start() fails with 401 given ${what}`, async () => {
      const connection = builder(`${server.url}/authorizedhub`, {
        accessTokenFactory: factory,
        logger: new MemoryLogger(signalR.LogLevel.None),
      }).build();
      await assert.rejects(connection.start(), (e) => {
        assert.match(String(e.message), /Status code '401'/);
        return true;
      });
      assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
    });
  }

  test("a skipNegotiation WebSocket without a token is refused with 401", async () => {
    const connection = builder(`${server.url}/authorizedhub`, {
      transport: "WebSockets",
      skipNegotiation: true,
      logger: new MemoryLogger(signalR.LogLevel.None),
    }).build();
    await assert.rejects(connection.start());
    assert.equal(connection.state, signalR.HubConnectionState.Disconnected);
    // The client's error does not say why; the upgrade itself is answered 401.
    const status = await new Promise((resolve, reject) => {
      const req = http.request(`${server.url}/authorizedhub`, {
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on("upgrade", (res, socket) => {
        socket.destroy();
        resolve(res.statusCode);
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 401);
  });
});

describe("leak check", () => {
  test("nothing remains on /authorizedhub or /testhub", async () => {
    await assertNoLeaks(server, ["/authorizedhub", "/testhub"]);
  });
});
