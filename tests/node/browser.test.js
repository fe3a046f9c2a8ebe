// The browser bundle of @microsoft/signalr in headless Chromium, from a page on another origin:
// JWT from /generateJwtToken, /authorizedhub with accessTokenFactory (the token travels as
// Authorization on HTTP requests and as access_token in the query for WebSockets and SSE), CORS with
// credentials, on every transport.
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { assertNoLeaks, launchChromium, startServer } from "./harness.js";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

let server;
let pageServer;
let browser;

before(async () => {
  server = await startServer();
  const bundle = fs.readFileSync(require.resolve("@microsoft/signalr/dist/browser/signalr.js"));
  const page = fs.readFileSync(path.join(here, "browser-page.html"));
  pageServer = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page);
    } else if (url.pathname === "/signalr.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close();
  if (pageServer) await new Promise((resolve) => pageServer.close(resolve));
  if (server) await server.stop();
});

test("Chromium on another origin: JWT, /authorizedhub on WebSockets, SSE and long polling", async () => {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
  const requests = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin === server.url) requests.push({ method: r.method(), path: u.pathname, query: u.search, headers: r.headers() });
  });
  const websockets = [];
  page.on("websocket", (ws) => websockets.push(ws.url()));
  const failures = [];
  page.on("response", (r) => {
    if (r.status() >= 400) failures.push(`${r.status()} ${r.request().method()} ${r.url()}`);
  });
  const pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
  try {
    await page.goto(`${pageOrigin}/?server=${encodeURIComponent(server.url)}`);
    await page.waitForFunction(() => window.done === true, null, { timeout: 60000 });
    const results = await page.evaluate(() => window.results);
    const context = `\nresults: ${JSON.stringify(results, null, 2)}\nconsole:\n${consoleLines.join("\n")}\nfailed requests:\n${failures.join("\n")}`;

    assert.notEqual(results.origin, server.url, "the page is on another origin than the server");
    assert.deepEqual(results.errors, [], context);
    assert.equal(results.tokenStatus, 200, context);
    assert.equal(results.tokenLooksLikeJwt, true, context);
    assert.match(results.anonymous.message, /Status code '401'/, `negotiate without a token must fail with 401${context}`);

    for (const name of ["WebSockets", "ServerSentEvents", "LongPolling"]) {
      const r = results.transports[name];
      assert.equal(r.failure, undefined, `${name} failed${context}`);
      assert.equal(r.transport, name, context);
      assert.equal(r.echo, `hello from ${name} ✓`, context);
      assert.equal(r.user, "testuser", `GetUserNameIdentifier is the token's sub${context}`);
      assert.equal(r.issuer, "SignalRTestServer", context);
      // The cookie negotiate set (cross-origin, with credentials) comes back on the transport's request.
      assert.equal(r.cookie, "testValue", `GetCookie over ${name}${context}`);
      // What the hub sees is the transport's request: a browser cannot add headers to WebSocket and
      // EventSource requests, so X-SignalR-User-Agent is only there on long polling (as ASP.NET's tests expect).
      if (name === "LongPolling") assert.match(r.signalrUserAgent || "", /^Microsoft SignalR\/10\./, context);
      else assert.equal(r.signalrUserAgent, null, context);
      assert.deepEqual(r.messages, [`event for ${name}`], context);
      assert.deepEqual(r.stream, ["a", "b", "c"], context);
      assert.equal(r.error, "An unexpected error occurred invoking 'ThrowException' on the server. InvalidOperationException: boom", context);
      assert.equal(r.closeError, null, `onclose after stop() has no error${context}`);
      assert.equal(r.connectionIdIsString, true, context);
      assert.ok(r.tokenRequests >= 1, context);
    }

    // How the token travelled: browsers cannot set headers on WebSocket/EventSource requests.
    const negotiates = requests.filter((r) => r.path === "/authorizedhub/negotiate");
    assert.ok(negotiates.length >= 4, `negotiate requests: ${JSON.stringify(negotiates.map((r) => r.query))}`);
    const withToken = negotiates.filter((r) => (r.headers.authorization || "").startsWith("Bearer "));
    assert.equal(withToken.length, 3, "the three authorized negotiates carried Authorization: Bearer");
    const sse = requests.filter((r) => r.method === "GET" && r.path === "/authorizedhub" && r.headers.accept === "text/event-stream");
    assert.equal(sse.length, 1, `one EventSource request: ${JSON.stringify(requests.map((r) => r.method + " " + r.path))}`);
    assert.match(sse[0].query, /[?&]access_token=/, "EventSource puts the token in the query");
    const ws = websockets.filter((u) => new URL(u).pathname === "/authorizedhub");
    assert.equal(ws.length, 1, `one WebSocket: ${JSON.stringify(websockets)}`);
    assert.match(new URL(ws[0]).search, /[?&]access_token=/, "the WebSocket puts the token in the query");
    const polls = requests.filter((r) => r.path === "/authorizedhub" && r.query.includes("_="));
    assert.ok(polls.length >= 2, "long polls were made");
    for (const p of polls) assert.match(p.headers.authorization || "", /^Bearer /, "long polls carry Authorization");

    const problems = consoleLines.filter((l) => /CORS|Access-Control|\[pageerror\]/i.test(l));
    assert.deepEqual(problems, [], "no CORS or page errors in the console");
    // The only failed requests are the expected 401, the page's favicon, and the stop() races the
    // client ignores: stop() posts a Close message without waiting and at once closes the EventSource
    // (the POST may arrive after the connection is gone: 404), and on long polling the Close ends the
    // connection before the DELETE arrives (404, which the client expects and logs at trace level).
    const benign = (f) =>
      f.includes("/favicon.ico") ||
      /^401 POST .*\/authorizedhub\/negotiate/.test(f) ||
      /^404 (POST|DELETE) .*\/authorizedhub\?id=/.test(f);
    const unexpected = failures.filter((f) => !benign(f));
    assert.deepEqual(unexpected, [], `unexpected failed requests${context}`);
  } finally {
    await page.close();
  }
});

test("CORS: preflight and responses reflect the Origin with credentials, never *", async () => {
  const origin = `http://127.0.0.1:${pageServer.address().port}`;
  const preflight = await fetch(`${server.url}/authorizedhub/negotiate?negotiateVersion=1`, {
    method: "OPTIONS",
    headers: {
      Origin: origin,
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "authorization,x-requested-with,x-signalr-user-agent",
    },
  });
  assert.ok(preflight.status === 204 || preflight.status === 200, `preflight answered ${preflight.status}`);
  assert.equal(preflight.headers.get("access-control-allow-origin"), origin);
  assert.equal(preflight.headers.get("access-control-allow-credentials"), "true");
  assert.match(preflight.headers.get("access-control-allow-methods") || "", /POST/);
  assert.match(preflight.headers.get("access-control-allow-headers") || "", /authorization/i);

  const unauthorized = await fetch(`${server.url}/authorizedhub/negotiate?negotiateVersion=1`, {
    method: "POST",
    headers: { Origin: origin },
  });
  assert.equal(unauthorized.status, 401);
  assert.equal(await unauthorized.text(), "", "a 401 has an empty body");
  assert.equal(unauthorized.headers.get("access-control-allow-origin"), origin, "even a 401 carries CORS headers");

  const token = await fetch(`${server.url}/generateJwtToken`, { headers: { Origin: origin } });
  assert.equal(token.headers.get("access-control-allow-origin"), origin);
  assert.equal(token.headers.get("access-control-allow-credentials"), "true");
  await token.text();
});

test("leak check: nothing remains on /testhub or /authorizedhub", async () => {
  await assertNoLeaks(server, ["/testhub", "/authorizedhub"]);
});
