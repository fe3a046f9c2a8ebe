// End to end in a real browser: the real server binary serves the built widget; Debian's Chromium,
// driven by playwright-core, signs in with an HS256 JWT minted here, chats, confirms a risky
// operation, and reconnects by itself after the server drops its socket (the server is killed and
// started again on the same port).
//
// Environment: SWITCHYARD_BIN (default ../target/debug/switchyard), CHROMIUM (default /usr/bin/chromium).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  launchChromium,
  openDemo,
  sleep,
  startServer,
  stopServer,
  userJwt,
  waitForServer,
} from './harness.mjs';

let port;
let dataDir;
let server;
let browser;
let page;
let ticketRequests = 0;

before(async () => {
  port = await freePort();
  dataDir = mkdtempSync(join(tmpdir(), 'switchyard-e2e-'));
  server = startServer({ port, dataDir });
  await waitForServer(server, port);
  browser = await launchChromium();
  const jwt = userJwt();
  page = await openDemo(browser, port, jwt);
  page.on('request', (req) => {
    if (req.method() === 'POST' && req.url().endsWith('/api/agent/ticket')) ticketRequests += 1;
  });
  await page.locator('[data-testid="status"][data-status="open"]').waitFor({ timeout: 15000 });
  // The JWT never goes into a URL: only the ticket does.
  assert.ok(!page.url().includes(jwt));
});

after(async () => {
  await browser?.close();
  await stopServer(server, 'SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});
async function ask(text) {
  await page.getByLabel('Message').fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
}

const lastAnswer = () => page.locator('[data-testid="assistant-message"]').last();

test('a message gets a streamed answer with thinking and a tool call', async () => {
  await ask('Hello from the browser');
  const answer = lastAnswer();
  await answer.and(page.locator('[data-status="done"]')).waitFor({ timeout: 15000 });
  const text = await answer.getByTestId('assistant-text').innerText();
  assert.match(text, /You asked: "Hello from the browser"/);
  assert.equal(await answer.locator('[data-tool="search_knowledge_base"]').count(), 1);
  assert.match(await answer.getByTestId('tool-result').innerText(), /matches/);
  assert.match(await answer.getByTestId('thinking').textContent(), /Reading your message/);
  assert.equal(await page.getByTestId('user-message').last().innerText(), 'Hello from the browser');
});

test('a risky operation waits for Confirm and then runs', async () => {
  await ask('Please delete quarterly-report.pdf');
  const answer = lastAnswer();
  const prompt = answer.getByTestId('confirmation');
  await prompt.waitFor({ timeout: 15000 });
  assert.match(await prompt.innerText(), /HIGH risk.*quarterly-report\.pdf/s);
  assert.equal(await answer.locator('[data-tool="delete_item"]').count(), 0, 'nothing ran before the answer');
  await prompt.getByRole('button', { name: 'Confirm' }).click();
  await answer.and(page.locator('[data-status="done"]')).waitFor({ timeout: 15000 });
  assert.equal(await answer.getByTestId('confirmation-answer').innerText(), 'Confirmed');
  assert.equal(await answer.locator('[data-tool="delete_item"]').count(), 1);
  assert.match(await answer.getByTestId('assistant-text').innerText(), /I deleted "quarterly-report\.pdf"/);
});

test('the widget reconnects by itself with a new ticket after the server drops its socket', async () => {
  const ticketsBefore = ticketRequests;
  await stopServer(server, 'SIGKILL');
  await page.locator('[data-testid="status"][data-status="reconnecting"]').waitFor({ timeout: 15000 });
  await sleep(1000); // a few failed attempts while the server is away
  server = startServer({ port, dataDir });
  await waitForServer(server, port);
  await page.locator('[data-testid="status"][data-status="open"]').waitFor({ timeout: 30000 });
  assert.ok(ticketRequests > ticketsBefore, 'a new ticket was fetched for the new socket');
  await ask('Are you back?');
  const answer = lastAnswer();
  await answer.and(page.locator('[data-status="done"]')).waitFor({ timeout: 15000 });
  assert.match(await answer.getByTestId('assistant-text').innerText(), /You asked: "Are you back\?"/);
  // The conversation continued across the reconnect: 4 earlier messages (2 turns before this one).
  assert.match(await answer.getByTestId('assistant-text').innerText(), /4 earlier messages/);
});
