// What the end-to-end tests share: the server binary under test, JWT minting, and Chromium.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const webDir = resolve(here, '..');
const binary = process.env.SWITCHYARD_BIN || resolve(webDir, '../target/debug/switchyard');
export const JWT_SECRET = 'e2e-secret-that-is-long-enough-for-hs256-0123456789';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An HS256 JWT, as an identity provider would issue it. */
export function mintJwt(claims) {
  const b64url = (data) => Buffer.from(data).toString('base64url');
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const signature = createHmac('sha256', JWT_SECRET).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

export function userJwt() {
  const now = Math.floor(Date.now() / 1000);
  return mintJwt({ sub: 'e2e-user', tenant_id: 'e2e-tenant', session_id: 'e2e', iat: now, exp: now + 3600 });
}

export async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** The real server binary on `port`, serving the built widget; `env` adds settings. */
export function startServer({ port, dataDir, env = {} }) {
  return spawn(binary, ['serve'], {
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
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

export async function waitForServer(server, port) {
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

export async function stopServer(server, signal = 'SIGKILL') {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill(signal);
  await exited;
}

export function launchChromium() {
  return chromium.launch({
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
}

/** Opens the demo page and signs in with `jwt`. */
export async function openDemo(browser, port, jwt) {
  const page = await browser.newPage();
  page.on('pageerror', (err) => console.error('page error:', err));
  await page.goto(`http://127.0.0.1:${port}/chat-demo/`);
  await page.getByLabel('User JWT').fill(jwt);
  await page.getByRole('button', { name: 'Connect' }).click();
  return page;
}
