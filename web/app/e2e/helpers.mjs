// Shared parts of the browser tests: the real server binary, Debian's
// Chromium driven by playwright-core, and the dev outbox as the mailbox.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHTTPServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import assert from 'node:assert/strict';
import { after, afterEach, before } from 'node:test';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { chromium } from 'playwright-core';

const repo = resolve(import.meta.dirname, '../../..');

/** Builds the server once per process (unless VERIFIER_BIN names one). */
let binary;
function serverBinary() {
  if (process.env.VERIFIER_BIN) return process.env.VERIFIER_BIN;
  if (!binary) {
    binary = join(mkdtempSync(join(tmpdir(), 'verifier-bin-')), 'verifier');
    execFileSync('go', ['build', '-o', binary, '.'], { cwd: repo, stdio: 'inherit' });
  }
  return binary;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/**
 * Starts the real server on loopback with its own SQLite database and the
 * dev outbox. `restart()` stops and starts it again on the same port and
 * database (for reconnect tests).
 */
export async function startServer(env = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'verifier-e2e-'));
  const url = `http://127.0.0.1:${port}`;
  const fullEnv = {
    ...process.env,
    HTTP_ADDR: `127.0.0.1:${port}`,
    PUBLIC_URL: url,
    DATABASE_URL: `sqlite:${join(dir, 'verifier.db')}`,
    AMQP_URL: '',
    SMTP_URL: '',
    LOG_LEVEL: 'warn',
    SHUTDOWN_GRACE: '2s',
    ...env,
  };
  let proc;
  const up = async () => {
    proc = spawn(serverBinary(), [], { env: fullEnv, stdio: ['ignore', 'inherit', 'inherit'] });
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('server did not start');
  };
  const down = async () => {
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) throw new Error(`server exited with ${code}`);
  };
  await up();
  return {
    url,
    stop: async () => {
      await down();
      rmSync(dir, { recursive: true, force: true });
    },
    halt: down,
    resume: up,
  };
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** A page that records console errors and uncaught exceptions. Its
 * browser prefers `locale` (navigator.languages): English unless a test
 * asks for another, whatever the machine's own settings. */
export async function openPage(browser, { viewport = { width: 1280, height: 800 }, colorScheme = 'light', locale = 'en-US' } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, locale });
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(m.text());
  });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return page;
}

/**
 * One browser for the calling test file, launched before its tests and
 * closed after them. `page(opts)` opens a page in a context of its own; after
 * each test, every such page must have logged no console error or uncaught
 * exception, and its context is closed.
 */
export function browserPages() {
  let browser;
  const pages = [];
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    const open = pages.splice(0);
    for (const p of open) {
      assert.deepEqual(p.errors, [], `console errors on ${p.url()}`);
      await p.context().close();
    }
  });
  return {
    get browser() {
      return browser;
    },
    async page(opts) {
      const p = await openPage(browser, opts);
      pages.push(p);
      return p;
    },
  };
}

/** The dev mailbox as JSON, newest first: [{to, subject, text, link, code, state, at}]. */
export async function devMail(server) {
  const res = await fetch(`${server.url}/dev/mail.json`);
  if (!res.ok) throw new Error(`/dev/mail.json answered ${res.status}`);
  return res.json();
}

/** Waits for the newest verification link mailed to `email`. */
export async function latestLink(server, email, { after } = {}) {
  for (let i = 0; i < 200; i++) {
    const mail = (await devMail(server)).find((m) => m.to === email && m.link.includes('/verify-email?token='));
    if (mail && mail.link !== after) return mail.link;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no link mailed to ${email}`);
}

/**
 * Waits for the newest one-time code mailed to `email` (other than `after`):
 * six digits, maybe split "123 456", after "code:" or else anywhere in the
 * text outside its links (a token may hold a run of digits).
 */
export async function latestCode(server, email, { after } = {}) {
  for (let i = 0; i < 200; i++) {
    for (const m of await devMail(server)) {
      if (m.to !== email) continue;
      const text = m.text.replace(/https?:\/\/\S+/g, ' ');
      const found = text.match(/code:\s*(\d{3})[ -]?(\d{3})(?!\d)/i) ?? text.match(/(?<![\d-])(\d{3})[ -]?(\d{3})(?![\d-])/);
      if (found && found[1] + found[2] !== after) return found[1] + found[2];
      break; // only the newest mail to the address counts
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no code mailed to ${email}`);
}

export async function gql(server, query, variables, bearer) {
  const headers = { 'Content-Type': 'application/json' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const res = await fetch(`${server.url}/query`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  return res.json();
}

export async function apiRegister(server, email, password = 'correct horse battery') {
  const r = await gql(server, 'mutation($i:RegisterInput!){register(input:$i){watchToken}}', { i: { email, password } });
  if (r.errors) throw new Error(JSON.stringify(r.errors));
  return r.data.register.watchToken;
}

export async function apiVerify(server, link) {
  const token = new URL(link).searchParams.get('token');
  const r = await gql(server, 'mutation($t:String!){verifyEmail(token:$t){status}}', { t: token });
  if (r.errors) throw new Error(JSON.stringify(r.errors));
}

/**
 * The integrating app on loopback: any path answers a small page, and every
 * request line is kept in `requests` (to show that a receipt in the
 * fragment never reaches a server).
 */
export async function startApp() {
  const requests = [];
  const srv = createHTTPServer((req, res) => {
    requests.push(req.url);
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>The app</title><link rel="icon" href="data:,"><h1>Back in the app</h1>');
  });
  await new Promise((ok) => srv.listen(0, '127.0.0.1', ok));
  return {
    origin: `http://127.0.0.1:${srv.address().port}`,
    requests,
    stop: () => new Promise((ok) => {
      srv.closeAllConnections();
      srv.close(ok);
    }),
  };
}

/** A verified account, made through the API. */
export async function apiVerifiedAccount(server, email, password = 'correct horse battery') {
  await apiRegister(server, email, password);
  await apiVerify(server, await latestLink(server, email));
}

/**
 * Checks a receipt or sign-in token the way an app's backend would: with
 * the `jose` package against the live JWKS. Returns its claims.
 */
export async function verifyJWT(server, jwt, tokenUse) {
  const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', server.url));
  const { payload, protectedHeader } = await jwtVerify(jwt, jwks, { issuer: server.url, algorithms: ['EdDSA'] });
  assert.ok(protectedHeader.kid, 'kid set');
  assert.equal(payload.token_use, tokenUse);
  return payload;
}

let seq = 0;
export function uniqueEmail(tag) {
  return `${tag}-${Date.now()}-${++seq}@example.com`;
}

/**
 * Presses the middle of `locator` with the mouse, as a person does, and
 * holds it a moment before letting go: a field the press leaves reacts in
 * between. Returns how many px the element moved down while held (a
 * click whose release misses the element is lost).
 */
export async function mousePress(page, locator) {
  const box = await locator.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.waitForTimeout(150);
  const held = await locator.boundingBox();
  await page.mouse.up();
  return held.y - box.y;
}

/**
 * Asserts that `locator` is still where its top was (`top`, from
 * boundingBox) on the screen, give or take the fraction of a pixel a
 * scroll rounds to: a pointer left where it pressed is still on it.
 */
export async function assertStill(locator, top, what) {
  const shift = (await locator.boundingBox()).y - top;
  assert.ok(Math.abs(shift) < 1, `${what}: moved ${shift} px on the screen`);
}

/** Signs up through the form. */
export async function signUp(page, server, email, password = 'correct horse battery') {
  await page.goto(server.url + '/');
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Check your inbox' }).waitFor();
}

/**
 * Starts recording what the page's live regions (aria-live, role status,
 * alert or log) would make a screen reader say: each change of the text of
 * a region that was already on the page. A region inserted with its text
 * is not counted, as screen readers mostly do not read one. `liveSaid(page)`
 * returns [{id, text}] since.
 */
export async function recordLiveRegions(page) {
  await page.evaluate(() => {
    const live = '[aria-live]:not([aria-live="off"]), [role="status"], [role="alert"], [role="log"]';
    const said = (window.__liveSaid = []);
    const last = new Map();
    for (const el of document.querySelectorAll(live)) last.set(el, el.textContent);
    new MutationObserver(() => {
      for (const el of document.querySelectorAll(live)) {
        const text = el.textContent;
        if (last.has(el) && last.get(el) !== text && text.trim()) said.push({ id: el.id, text: text.trim() });
        last.set(el, text);
      }
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

export async function liveSaid(page) {
  // Past the next frames: the page may set a region's text in one.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 300)))));
  return page.evaluate(() => window.__liveSaid);
}

/**
 * Registers email on server, lets its link expire (the server's TOKEN_TTL
 * must be under 2 s), opens the link in a new page from newPage and
 * confirms, up to the "This link has expired" screen; returns the page and
 * the link.
 */
export async function openExpiredLink(server, newPage, email) {
  await apiRegister(server, email);
  const link = await latestLink(server, email);
  await new Promise((r) => setTimeout(r, 2100)); // outlive TOKEN_TTL
  const p = await newPage();
  await p.goto(link);
  await p.getByRole('button', { name: 'Confirm my email' }).click();
  await p.getByRole('heading', { name: 'This link has expired' }).waitFor();
  return { p, link };
}
