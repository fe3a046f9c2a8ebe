// End to end in a real browser: the real server binary serves the built widget; Debian's Chromium,
// driven by playwright-core, signs in with an HS256 JWT minted here, chats, confirms a risky
// operation, and reconnects by itself after the server drops its socket (the server is killed and
// started again on the same port).
//
// Environment: SWITCHYARD_BIN (default ../target/debug/switchyard), CHROMIUM (default /usr/bin/chromium).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const webDir = resolve(here, '..');
const binary = process.env.SWITCHYARD_BIN || resolve(webDir, '../target/debug/switchyard');
const JWT_SECRET = 'e2e-secret-that-is-long-enough-for-hs256-0123456789';

const b64url = (data) => Buffer.from(data).toString('base64url');

/** An HS256 JWT, as an identity provider would issue it. */
function mintJwt(claims) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const signature = createHmac('sha256', JWT_SECRET).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let port;
let dataDir;
let server;
let browser;
let page;
let ticketRequests = 0;

function startServer() {
  const child = spawn(binary, ['serve'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      JWT_SECRET,
      SWITCHYARD__SERVER__BIND: `127.0.0.1:${port}`,
      SWITCHYARD__SERVER__WORKERS: '1',
      SWITCHYARD__SERVER__DATA_DIR: dataDir,
      SWITCHYARD__CHAT__WEB_DIR: join(webDir, 'dist'),
      SWITCHYARD__CHAT__DEMO_DELAY_MS: '10',
      SWITCHYARD__LOG__LEVEL: 'error',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return child;
}

async function waitForServer() {
  for (let i = 0; i < 200; i += 1) {
    if (server.exitCode !== null) throw new Error(`server exited with ${server.exitCode}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health/live`);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error('server did not start');
}

async function stopServer(signal = 'SIGKILL') {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill(signal);
  await exited;
}

before(async () => {
  port = await freePort();
  dataDir = mkdtempSync(join(tmpdir(), 'switchyard-e2e-'));
  server = startServer();
  await waitForServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  page = await browser.newPage();
  page.on('request', (req) => {
    if (req.method() === 'POST' && req.url().endsWith('/api/agent/ticket')) ticketRequests += 1;
  });
  page.on('pageerror', (err) => console.error('page error:', err));
  await page.goto(`http://127.0.0.1:${port}/chat-demo/`);
  const now = Math.floor(Date.now() / 1000);
  const jwt = mintJwt({ sub: 'e2e-user', tenant_id: 'e2e-tenant', session_id: 'e2e', iat: now, exp: now + 3600 });
  await page.getByLabel('User JWT').fill(jwt);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('[data-testid="status"][data-status="open"]').waitFor({ timeout: 15000 });
  // The JWT never goes into a URL: only the ticket does.
  assert.ok(!page.url().includes(jwt));
});

after(async () => {
  await browser?.close();
  await stopServer('SIGTERM');
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
  await stopServer('SIGKILL');
  await page.locator('[data-testid="status"][data-status="reconnecting"]').waitFor({ timeout: 15000 });
  await sleep(1000); // a few failed attempts while the server is away
  server = startServer();
  await waitForServer();
  await page.locator('[data-testid="status"][data-status="open"]').waitFor({ timeout: 30000 });
  assert.ok(ticketRequests > ticketsBefore, 'a new ticket was fetched for the new socket');
  await ask('Are you back?');
  const answer = lastAnswer();
  await answer.and(page.locator('[data-status="done"]')).waitFor({ timeout: 15000 });
  assert.match(await answer.getByTestId('assistant-text').innerText(), /You asked: "Are you back\?"/);
  // The conversation continued across the reconnect: 4 earlier messages (2 turns before this one).
  assert.match(await answer.getByTestId('assistant-text').innerText(), /4 earlier messages/);
});
