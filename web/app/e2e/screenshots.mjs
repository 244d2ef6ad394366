// Saves screenshots of each screen at desktop and phone widths, in light
// and dark, to docs/screenshots/. Run with `npm run screenshots` after a
// visible change and commit the PNGs the README shows.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  apiRegister, apiVerifiedAccount, latestCode, latestLink, launch, openPage, signUp, startApp, startServer, uniqueEmail,
} from './helpers.mjs';

const out = resolve(import.meta.dirname, '../../../docs/screenshots');
mkdirSync(out, { recursive: true });
const sizes = { desktop: { width: 1280, height: 800 }, phone: { width: 360, height: 740 } };

/** Saves `page` as docs/screenshots/<name>-<size>-<colorScheme>.png. */
async function save(page, name, size, colorScheme) {
  const file = join(out, `${name}-${size}-${colorScheme}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(file);
}

const app = await startApp();
const server = await startServer({ TOKEN_TTL: '3s', RESEND_COOLDOWN: '60s', REDIRECT_ALLOWLIST: app.origin });
const browser = await launch();
try {
  for (const [size, viewport] of Object.entries(sizes)) {
    for (const colorScheme of ['light', 'dark']) {
      const shot = (page, name) => save(page, name, size, colorScheme);
      const email = uniqueEmail('ada');
      const p = await openPage(browser, { viewport, colorScheme });
      await p.goto(server.url + '/');
      await p.getByLabel('Email', { exact: true }).fill(email);
      await p.getByLabel('Password', { exact: true }).fill('correct horse');
      await p.getByLabel('Password', { exact: true }).blur();
      await shot(p, 'signup');
      await signUp(p, server, email);
      await p.getByText('Live', { exact: true }).waitFor();
      await p.locator('#resend').click();
      await p.getByText(/Resend in \d+ s/).waitFor();
      await shot(p, 'inbox');

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
        const late = uniqueEmail('late');
        await apiRegister(server, late);
        const old = await latestLink(server, late);
        await new Promise((r) => setTimeout(r, 3100));
        const e = await openPage(browser, { viewport, colorScheme });
        await e.goto(old);
        await e.getByRole('button', { name: 'Confirm my email' }).click();
        await e.getByRole('heading', { name: 'This link has expired' }).waitFor();
        await shot(e, 'expired');
        const d = await openPage(browser, { viewport, colorScheme });
        await d.goto(server.url + '/dev/mail');
        await shot(d, 'devmail');
      }
    }
  }

  // The code, the way back to the app, sign-in and a new address: desktop
  // light and phone dark, like the README shows them.
  for (const [size, colorScheme] of [['desktop', 'light'], ['phone', 'dark']]) {
    const viewport = sizes[size];
    const shot = (page, name) => save(page, name, size, colorScheme);
    const email = uniqueEmail('ada');
    const p = await openPage(browser, { viewport, colorScheme });
    await p.goto(`${server.url}/?redirect_to=${encodeURIComponent(`${app.origin}/welcome`)}`);
    await p.getByLabel('Email', { exact: true }).fill(email);
    await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await p.getByRole('button', { name: 'Create account' }).click();
    await p.getByText('Live', { exact: true }).waitFor();
    const code = await latestCode(server, email);
    const field = p.getByLabel('Or type the 6-digit code from the email');
    await field.fill(String((Number(code) + 1) % 1e6).padStart(6, '0'));
    await p.locator('#code-error').getByText('tries left').waitFor();
    await shot(p, 'code');
    await field.fill(code);
    await p.getByRole('link', { name: 'Continue' }).waitFor();
    await shot(p, 'continue');

    const unconfirmed = uniqueEmail('bo');
    await apiRegister(server, unconfirmed);
    const s = await openPage(browser, { viewport, colorScheme });
    await s.goto(`${server.url}/sign-in`);
    await s.getByLabel('Email', { exact: true }).fill(unconfirmed);
    await s.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await s.getByRole('button', { name: 'Sign in' }).click();
    await s.getByRole('button', { name: 'Send me a new link' }).click();
    await s.getByText(/Send again in \d+ s/).waitFor();
    await shot(s, 'signin');

    const verified = uniqueEmail('cy');
    await apiVerifiedAccount(server, verified);
    await s.goto(`${server.url}/sign-in`);
    await s.getByLabel('Email', { exact: true }).fill(verified);
    await s.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await s.getByRole('button', { name: 'Sign in' }).click();
    await s.getByRole('heading', { name: 'You are signed in' }).waitFor();
    await shot(s, 'signedin');
    await s.getByRole('button', { name: 'Change address' }).click();
    await s.getByLabel('New email address').fill(uniqueEmail('cy-new'));
    await s.getByRole('button', { name: 'Send link and code' }).click();
    await s.getByRole('heading', { name: 'Confirm your new address' }).waitFor();
    await shot(s, 'change');
  }
} finally {
  await browser.close();
  await server.stop();
  await app.stop();
}
