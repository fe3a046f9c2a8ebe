// The operator pages as an operator uses them, in headless Chromium (playwright-core with the system's
// Chromium), against the real server: /admin (log in with the master key, watch a key's live connections
// appear, disable the key with the page's button, see them vanish while the real @microsoft/signalr
// clients are closed) and /test-admin-signalr.html (connect, "Test Subscriptions", the live event log).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { MASTER_KEY, assertNoLeaks, builder, deferred, launchChromium, startServer, waitFor, within } from "./harness.js";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchChromium();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function api(method, path, body) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { "X-API-Key": MASTER_KEY, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A page that records console errors and failed requests, to show them when a test fails. */
async function openPage(path) {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`[pageerror] ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`[console] ${m.text()}`);
  });
  await page.goto(`${server.url}${path}`);
  return { page, problems };
}

const text = (page, selector) => page.locator(selector).textContent({ timeout: 1000 }).catch(() => null);

test("/admin: log in, see a key's live connections appear, disable the key from the page, see them vanish", async () => {
  const { page, problems } = await openPage("/admin");
  const clients = [];
  try {
    assert.equal(await page.title(), "Switchyard: operator console");
    await page.fill("#key", MASTER_KEY);
    await page.click("#connect");
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 10000 });

    // Provider health arrives with the connection (InitialProviderHealth).
    const simulated = page.locator('#providers tr[data-provider="simulated"]');
    await simulated.waitFor({ timeout: 5000 });
    assert.equal(await simulated.locator('[data-role="status"]').textContent(), "Healthy");

    // A key created through the admin API appears live (VirtualKeyCreated), with no reload.
    const created = await api("POST", "/api/virtualkeys", { keyName: "browser-watched", maxBudget: 5 });
    assert.equal(created.status, 201);
    const { virtualKey: key, keyInfo } = created.body;
    const row = page.locator(`#keys tr[data-key-id="${keyInfo.id}"]`);
    await row.waitFor({ timeout: 5000 });
    assert.equal(await row.locator('[data-role="name"]').textContent(), "browser-watched");
    assert.equal(await row.locator('[data-role="state"]').textContent(), "enabled");
    assert.equal(await row.locator('[data-role="spend"]').textContent(), "0 of 5");
    assert.equal(await row.locator('[data-role="connections"]').textContent(), "0");
    assert.match(await page.locator("#events").textContent(), new RegExp(`VirtualKeyCreated: ${keyInfo.id} browser-watched`));
    assert.ok(!(await page.content()).includes(key), "the page never shows the key itself");

    // Real clients connect with the key, on two hubs and two transports; the page counts them live.
    for (const [hub, transport] of [["/hubs/image-generation", "WebSockets"], ["/hubs/video-generation", "ServerSentEvents"]]) {
      const connection = builder(`${server.url}${hub}`, { transport, accessTokenFactory: () => key }).build();
      const closed = deferred();
      connection.onclose((error) => closed.resolve(error));
      await connection.start();
      clients.push({ connection, closed, transport });
    }
    await waitFor(async () => (await text(page, `#keys tr[data-key-id="${keyInfo.id}"] [data-role="connections"]`)) === "2",
      "the page to show 2 live connections for the key", 10000);
    const connectionRows = page.locator(`#connections tr[data-key-id="${keyInfo.id}"]`);
    assert.equal(await connectionRows.count(), 2);
    const transports = await connectionRows.locator('[data-role="transport"]').allTextContents();
    assert.deepEqual(transports.sort(), ["ServerSentEvents", "WebSockets"]);
    assert.ok((await row.locator('[data-role="connections"]').textContent()) === "2");

    // The operator disables the key with the page's button: the clients are closed, and the page shows it.
    const button = row.locator('button[data-action="toggle"]');
    assert.equal(await button.textContent(), "Disable");
    await button.click();
    for (const c of clients) {
      const error = await within(c.closed.promise, 5000, `${c.transport} client closed after Disable`);
      assert.match(String(error?.message), /Virtual key is disabled/, c.transport);
      assert.equal(c.connection.state, "Disconnected");
    }
    await waitFor(async () => (await text(page, `#keys tr[data-key-id="${keyInfo.id}"] [data-role="connections"]`)) === "0",
      "the page to show 0 live connections", 10000);
    await waitFor(async () => (await connectionRows.count()) === 0, "the connection rows to vanish", 10000);
    assert.equal(await row.locator('[data-role="state"]').textContent(), "disabled");
    assert.equal(await button.textContent(), "Enable");
    await waitFor(async () => /VirtualKeyUpdated: \d+ browser-watched enabled=false/.test(await page.locator("#events").textContent()),
      "the event stream to show the update");
    const stored = await api("GET", `/api/virtualkeys/${keyInfo.id}`);
    assert.equal(stored.body.isEnabled, false);
    // The key stays refused: a new connection fails.
    const again = builder(`${server.url}/hubs/image-generation`, { accessTokenFactory: () => key }).build();
    await assert.rejects(again.start(), /401|Unauthorized/);

    // A deletion elsewhere removes the row live.
    assert.equal((await api("DELETE", `/api/virtualkeys/${keyInfo.id}`)).status, 204);
    await row.waitFor({ state: "detached", timeout: 5000 });
    // The provider's health as a worker reports it shows up live too.
    assert.equal((await api("POST", "/api/providers/simulated/health", { status: "Degraded", details: "slow" })).status, 200);
    await waitFor(async () => (await simulated.locator('[data-role="status"]').textContent()) === "Degraded", "Degraded on the page");
    assert.match(await page.locator("#events").textContent(), /ProviderHealthUpdate: simulated Degraded \(slow\)/);
    assert.equal((await api("POST", "/api/providers/simulated/health", { status: "Healthy" })).status, 200);
    assert.deepEqual(problems, []);
  } finally {
    for (const c of clients) await c.connection.stop().catch(() => {});
    await page.close();
  }
});

test("/admin: a connection can be closed from the page; a wrong master key is refused", async () => {
  const { page: refused } = await openPage("/admin");
  try {
    await refused.fill("#key", "not-the-master-key");
    await refused.click("#connect");
    await waitFor(async () => /^refused/.test(await text(refused, "#state")), "the page to say the key was refused");
    assert.equal(await refused.locator("#keys tr").count(), 0, "nothing is shown without the master key");
  } finally {
    await refused.close();
  }

  const { page, problems } = await openPage("/admin");
  const created = await api("POST", "/api/virtualkeys", { keyName: "browser-close-one" });
  const { virtualKey: key, keyInfo } = created.body;
  const connection = builder(`${server.url}/hubs/image-generation`, { accessTokenFactory: () => key }).build();
  const closed = deferred();
  connection.onclose((error) => closed.resolve(error));
  try {
    await page.fill("#key", MASTER_KEY);
    await page.press("#key", "Enter");
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 10000 });
    await connection.start();
    const row = page.locator(`#connections tr[data-connection-id="${connection.connectionId}"]`);
    await row.waitFor({ timeout: 5000 });
    assert.equal(await row.locator('[data-role="principal"]').textContent(), `vkey:${keyInfo.id}`);
    await row.locator('button[data-action="close"]').click();
    const error = await within(closed.promise, 5000, "the client to be closed");
    assert.match(String(error?.message), /Closed from the operator console/);
    await row.waitFor({ state: "detached", timeout: 5000 });
    assert.deepEqual(problems, []);
  } finally {
    await connection.stop().catch(() => {});
    await page.close();
  }
});

test("/test-admin-signalr.html: a wrong key fails; connect, Test Subscriptions, and key events in the live log", async () => {
  const { page, problems } = await openPage("/test-admin-signalr.html");
  const lines = () => page.locator("#log > div").allTextContents();
  // A log line with the event `name` whose text contains every fragment (JSON key order is not fixed).
  const has = (list, name, fragments) => list.some((l) => l.includes(` ${name} `) && fragments.every((f) => l.includes(f)));
  const logShows = (name, fragments = []) =>
    waitFor(async () => has(await lines(), name, fragments), `${name} ${fragments.join(" ")} in the log`, 5000).catch(
      async (e) => {
        throw new Error(`${e.message}\nlog:\n${(await lines()).join("\n")}`);
      },
    );
  try {
    await page.fill("#key", "wrong-master-key");
    await page.click("#connect");
    await waitFor(async () => (await text(page, "#state")) === "refused", "the page to say refused");
    await waitFor(async () => (await lines()).some((l) => /Cannot connect|Connection refused/.test(l)), "a failure line");
    assert.equal(await page.locator("#test-subscriptions").isDisabled(), true);

    await page.fill("#key", MASTER_KEY);
    await page.click("#connect");
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 10000 });
    await logShows("InitialProviderHealth", ['"provider":"simulated"']);

    const created = await api("POST", "/api/virtualkeys", { keyName: "logged-key" });
    const id = created.body.keyInfo.id;
    await logShows("VirtualKeyCreated", [`"id":${id},`, '"keyName":"logged-key"']);

    await page.fill("#keyId", String(id));
    await page.click("#test-subscriptions");
    await waitFor(async () => (await lines()).some((l) => l.includes("Test Subscriptions: 3 of 3 methods completed")),
      "the Test Subscriptions summary");
    const afterTest = await lines();
    assert.ok(has(afterTest, "SubscribedToVirtualKey", [`[${id}]`]), afterTest.join("\n"));
    assert.ok(has(afterTest, "ProviderHealthStatus", ['"provider":"simulated"']), afterTest.join("\n"));
    assert.ok(has(afterTest, "SubscribedToProvider", ['["simulated"]']), afterTest.join("\n"));
    assert.ok(has(afterTest, "ProviderHealthRefreshed", ['"provider":"simulated"']), afterTest.join("\n"));

    // Changes through the REST API appear live: to all admins, and to this key's subscriber.
    assert.equal((await api("PUT", `/api/virtualkeys/${id}`, { description: "seen live" })).status, 200);
    await logShows("VirtualKeyUpdated", [`"id":${id},`, '"description":"seen live"']);
    await logShows("VirtualKeyUpdate", [`"virtualKeyId":${id}}`, '"updateType":"Updated"']);
    assert.equal((await api("DELETE", `/api/virtualkeys/${id}`)).status, 204);
    await logShows("VirtualKeyDeleted", [`"virtualKeyId":${id}}`]);

    // An unknown key: the hub answers with an Error event, which the log shows.
    await page.fill("#keyId", "999999");
    await page.click('button[data-method="SubscribeToVirtualKey"]');
    await logShows("Error", ['"message":"Virtual key 999999 not found"']);

    await page.click("#disconnect");
    await waitFor(async () => (await text(page, "#state")) === "disconnected", "the page to disconnect");
    // The browser itself logs the refused WebSocket of the wrong key; nothing else may fail.
    assert.deepEqual(problems.filter((p) => !p.includes("access_token=wrong-master-key")), []);
  } finally {
    await page.close();
  }
});

test("leak check: the pages' and clients' connections are gone", async () => {
  await assertNoLeaks(server, ["/hubs/admin-notifications", "/hubs/image-generation", "/hubs/video-generation"]);
});
