// Saves screenshots of each screen at desktop and phone widths, in light
// and dark, to docs/screenshots/. Run with `npm run screenshots` after a
// visible change and commit the PNGs the README shows.
//
// Two runs give byte-identical PNGs: fixed addresses, each run of screens on
// a server of its own (so an address is new to it), a fixed wrong code, the
// countdowns' seconds fixed and their clock paused (playwright's clock API),
// animations off, and on the dev mailbox, which shows what is random by
// nature (the server's port, the token, how long ago), fixed stand-ins.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  apiRegister, apiVerifiedAccount, latestCode, latestLink, launch, openPage, signUp, startServer,
} from './helpers.mjs';

const out = resolve(import.meta.dirname, '../../../docs/screenshots');
mkdirSync(out, { recursive: true });
const sizes = { desktop: { width: 1280, height: 800 }, phone: { width: 360, height: 740 } };
// The app that sends people here, for Continue: never opened, only named.
const app = 'https://app.example';
// What a rate-limited button counts down from in the pictures.
const waitSeconds = 42;

/** Saves `page` as docs/screenshots/<name>-<size>-<colorScheme>.png. */
async function save(page, name, size, colorScheme) {
  const file = join(out, `${name}-${size}-${colorScheme}.png`);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'hide' });
  console.log(file);
}

/** A server of its own for one run of screens: every address is new to it. */
const serve = (env = {}) => startServer({ RESEND_COOLDOWN: '60s', REDIRECT_ALLOWLIST: app, ...env });

/**
 * A page whose countdowns show `waitSeconds` and stand still: the server's
 * retryAfterSeconds (which depends on how long the steps before took) is
 * replaced, and `freeze()` pauses the page's clock, so the label cannot
 * tick before the picture is taken. `thaw()` lets time run again.
 */
async function countdownPage(viewport, colorScheme) {
  const page = await openPage(browser, { viewport, colorScheme });
  await page.clock.install();
  await page.route('**/query', async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    for (const e of body.errors ?? []) {
      if (e.extensions?.retryAfterSeconds) e.extensions.retryAfterSeconds = waitSeconds;
    }
    await route.fulfill({ response: res, json: body });
  });
  page.freeze = async () => page.clock.pauseAt(await page.evaluate(() => Date.now() + 100));
  page.thaw = () => page.clock.resume();
  return page;
}

/** The dev mailbox with fixed stand-ins for its port, tokens and ages. */
async function steadyDevMail(page) {
  await page.evaluate(() => {
    for (const a of document.querySelectorAll('a[href*="token="]')) {
      const u = new URL(a.href);
      const email = a.closest('article').querySelector('.meta').textContent.match(/To (\S+)/)[1];
      u.host = 'localhost:8080';
      u.searchParams.set('token', email); // replaced below by a hash of it
      a.href = u.href;
      a.textContent = u.href;
      a.dataset.email = email;
    }
    for (const m of document.querySelectorAll('.meta')) {
      for (const n of m.childNodes) if (n.nodeType === Node.TEXT_NODE) n.data = n.data.replace(/\d+s ago/, '5s ago');
    }
  });
  for (const a of await page.locator('a[data-email]').all()) {
    const email = await a.getAttribute('data-email');
    const token = createHash('sha256').update(email).digest('base64url').slice(0, 43);
    await a.evaluate((el, t) => {
      const u = new URL(el.href);
      u.searchParams.set('token', t);
      el.href = u.href;
      el.textContent = u.href;
    }, token);
  }
}

const browser = await launch();
try {
  for (const [size, viewport] of Object.entries(sizes)) {
    for (const colorScheme of ['light', 'dark']) {
      const server = await serve();
      try {
        const shot = (page, name) => save(page, name, size, colorScheme);
        const email = 'ada.lovelace-1815@example.com';
        const p = await countdownPage(viewport, colorScheme);
        await p.goto(server.url + '/');
        await p.getByLabel('Email', { exact: true }).fill(email);
        await p.getByLabel('Password', { exact: true }).fill('correct horse');
        await p.getByLabel('Password', { exact: true }).blur();
        await shot(p, 'signup');
        await signUp(p, server, email);
        await p.getByText('Live', { exact: true }).waitFor();
        await p.locator('#delivery[data-state="SENT"]').waitFor();
        await p.freeze();
        await p.locator('#resend').click();
        await p.getByText(`Resend in ${waitSeconds} s`).waitFor();
        await shot(p, 'inbox');
        await p.thaw();

        const link = await latestLink(server, email);
        const b = await openPage(browser, { viewport, colorScheme });
        await b.goto(link);
        await b.getByRole('button', { name: 'Confirm my email' }).waitFor();
        await shot(b, 'confirm');
        await b.getByRole('button', { name: 'Confirm my email' }).click();
        await b.getByRole('heading', { name: 'Email verified' }).waitFor();
        await shot(b, 'confirmed');
        await p.getByText('Your email is verified.').waitFor();
        await shot(p, 'verified');

        if (colorScheme === 'light') {
          const d = await openPage(browser, { viewport, colorScheme });
          await d.goto(server.url + '/dev/mail');
          await steadyDevMail(d);
          await shot(d, 'devmail');

          const short = await serve({ TOKEN_TTL: '2s', RESEND_COOLDOWN: '1s' });
          try {
            const late = 'grace.hopper-1906@example.com';
            await apiRegister(short, late);
            const old = await latestLink(short, late);
            await new Promise((r) => setTimeout(r, 2100)); // outlive TOKEN_TTL
            const e = await openPage(browser, { viewport, colorScheme });
            await e.goto(old);
            await e.getByRole('button', { name: 'Confirm my email' }).click();
            await e.getByRole('heading', { name: 'This link has expired' }).waitFor();
            await shot(e, 'expired');
          } finally {
            await short.stop();
          }
        }
        await p.context().close();
        await b.context().close();
      } finally {
        await server.stop();
      }
    }
  }

  // The code, the way back to the app, sign-in and a new address: desktop
  // light and phone dark, like the README shows them.
  for (const [size, colorScheme] of [['desktop', 'light'], ['phone', 'dark']]) {
    const server = await serve();
    try {
      const viewport = sizes[size];
      const shot = (page, name) => save(page, name, size, colorScheme);
      const email = 'ada.lovelace-1815@example.com';
      const p = await openPage(browser, { viewport, colorScheme });
      await p.goto(`${server.url}/?redirect_to=${encodeURIComponent(`${app}/welcome`)}`);
      await p.getByLabel('Email', { exact: true }).fill(email);
      await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
      await p.getByRole('button', { name: 'Create account' }).click();
      await p.getByText('Live', { exact: true }).waitFor();
      await p.locator('#delivery[data-state="SENT"]').waitFor();
      const code = await latestCode(server, email);
      const field = p.getByLabel('Or type the 6-digit code from the email');
      await field.fill(code === '123456' ? '654321' : '123456');
      await p.locator('#code-error').getByText('tries left').waitFor();
      await shot(p, 'code');
      await field.fill(code);
      await p.getByRole('link', { name: 'Continue' }).waitFor();
      await shot(p, 'continue');

      const unconfirmed = 'bob.kahn-1938@example.com';
      await apiRegister(server, unconfirmed);
      const s = await countdownPage(viewport, colorScheme);
      await s.goto(`${server.url}/sign-in`);
      await s.getByLabel('Email', { exact: true }).fill(unconfirmed);
      await s.getByLabel('Password', { exact: true }).fill('correct horse battery');
      await s.getByRole('button', { name: 'Sign in' }).click();
      await s.getByRole('button', { name: 'Send me a new link' }).waitFor();
      await s.freeze();
      await s.getByRole('button', { name: 'Send me a new link' }).click();
      await s.getByText(`Send again in ${waitSeconds} s`).waitFor();
      await shot(s, 'signin');
      await s.thaw();

      const verified = 'vint.cerf-1943@example.com';
      await apiVerifiedAccount(server, verified);
      await s.goto(`${server.url}/sign-in`);
      await s.getByLabel('Email', { exact: true }).fill(verified);
      await s.getByLabel('Password', { exact: true }).fill('correct horse battery');
      await s.getByRole('button', { name: 'Sign in' }).click();
      await s.getByRole('heading', { name: 'You are signed in' }).waitFor();
      await shot(s, 'signedin');
      await s.getByRole('button', { name: 'Change address' }).click();
      await s.getByLabel('New email address').fill('vint.cerf-new@example.com');
      await s.getByRole('button', { name: 'Send link and code' }).click();
      await s.getByRole('heading', { name: 'Confirm your new address' }).waitFor();
      await shot(s, 'change');
      await p.context().close();
      await s.context().close();
    } finally {
      await server.stop();
    }
  }
} finally {
  await browser.close();
}
