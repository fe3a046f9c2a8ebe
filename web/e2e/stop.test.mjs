// The widget stops for good on close code 4003 (the server cannot check tickets): the server's
// Redis is unreachable, the ticket answer is stubbed in the browser so that the socket is tried, and
// no reconnect follows the close.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, launchChromium, sleep, startServer, stopServer, userJwt, waitForServer } from './harness.mjs';

let port;
let dataDir;
let server;
let browser;

before(async () => {
  port = await freePort();
  const deadRedisPort = await freePort();
  dataDir = mkdtempSync(join(tmpdir(), 'switchyard-e2e-'));
  server = startServer({
    port,
    dataDir,
    env: { REDIS_URL: `redis://127.0.0.1:${deadRedisPort}`, SWITCHYARD__REDIS__TIMEOUT_MS: '300' },
  });
  await waitForServer(server, port);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stopServer(server, 'SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('close code 4003 stops the widget without reconnecting', async () => {
  const page = await browser.newPage();
  let ticketRequests = 0;
  await page.route('**/api/agent/ticket', (route) => {
    ticketRequests += 1;
    route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({ ticket: 'A'.repeat(43), expires_in: 60 }),
    });
  });
  await page.goto(`http://127.0.0.1:${port}/chat-demo/`);
  await page.getByLabel('User JWT').fill(userJwt());
  await page.getByRole('button', { name: 'Connect' }).click();
  const status = page.locator('[data-testid="status"][data-status="stopped"]');
  await status.waitFor({ timeout: 15000 });
  assert.match(await status.innerText(), /Ticket auth not configured/);
  await sleep(2500);
  assert.equal(ticketRequests, 1, 'no reconnect after 4003');
  assert.equal(await page.locator('[data-testid="status"]').getAttribute('data-status'), 'stopped');
});
