// A button pressed with the keyboard keeps the focus while its request
// runs, and a second press meanwhile sends nothing: the server's answer is
// held (page.route) until the test has looked. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apiRegister, apiVerifiedAccount, browserPages, latestCode, latestLink, openExpiredLink, signUp, startServer, uniqueEmail,
} from './helpers.mjs';

const { page } = browserPages();
let server;
const password = 'correct horse battery';

before(async () => {
  server = await startServer({ RESEND_COOLDOWN: '1s' });
});
after(async () => {
  await server?.stop();
});

/** What has the keyboard focus: BODY, or the element's text. */
const focused = (p) => p.evaluate(() => {
  const el = document.activeElement;
  return !el || el === document.body ? 'BODY' : `${el.tagName}:${el.textContent.trim()}`;
});

/** The contrast of `el`'s text on the first background behind it (0 if
 * it is faded), as the countdown test in app.test.mjs measures it. */
const contrast = (el) => el.evaluate((node) => {
  const rgb = (c) => c.match(/[\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = node;
  while (rgb(getComputedStyle(bg).backgroundColor)[3] === 0) bg = bg.parentElement;
  const style = getComputedStyle(node);
  if (Number(style.opacity) !== 1) return 0;
  const [a, b] = [lum(rgb(style.color)), lum(rgb(getComputedStyle(bg).backgroundColor))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
});

/**
 * Holds the answer to every POST /query whose body matches `pattern` until
 * `release()`; `sent()` is how many went out, `first` resolves on the first.
 */
async function hold(p, pattern) {
  let open, seen;
  const gate = new Promise((r) => (open = r));
  const first = new Promise((r) => (seen = r));
  let count = 0;
  await p.route('**/query', async (route) => {
    if (!pattern.test(route.request().postData() ?? '')) return route.fallback();
    count++;
    seen();
    await gate;
    await route.continue();
  });
  return { first, sent: () => count, release: () => open() };
}

/**
 * Presses `button` with `key` while its request (matching `pattern`) is
 * held: the focus must stay on it, and Enter and Space on it again must
 * send nothing. Then lets the answer through.
 */
async function pressWhileBusy(p, button, key, pattern) {
  const held = await hold(p, pattern);
  const el = await button.elementHandle();
  await el.focus();
  await p.keyboard.press(key);
  await held.first;
  // Past the frame in which the button was marked busy.
  await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50))));
  const label = await el.evaluate((b) => b.textContent.trim());
  assert.equal(await focused(p), `BUTTON:${label}`, 'the pressed button keeps the focus while its request runs');
  assert.equal(await el.getAttribute('aria-disabled'), 'true', 'unavailable to screen readers');
  assert.equal(await el.getAttribute('disabled'), null, 'not disabled: that drops the focus');
  const ratio = await contrast(el);
  assert.ok(ratio >= 4.5, `contrast ${ratio.toFixed(2)}:1 of the busy button's text`);
  await p.keyboard.press('Enter');
  await p.keyboard.press('Space');
  await p.evaluate(() => new Promise((r) => setTimeout(r, 300)));
  assert.equal(held.sent(), 1, 'a second press while it runs sends nothing');
  return held;
}

describe('a busy button keeps the keyboard focus and ignores presses', () => {
  test('Create account, in light and dark', async () => {
    for (const colorScheme of ['light', 'dark']) {
      const p = await page({ colorScheme });
      await p.goto(server.url + '/');
      await p.getByLabel('Email', { exact: true }).fill(uniqueEmail('busy-signup'));
      await p.getByLabel('Password', { exact: true }).fill(password);
      const held = await pressWhileBusy(p, p.getByRole('button', { name: 'Create account' }), 'Space', /register\(/);
      held.release();
      await p.getByRole('heading', { name: 'Check your inbox' }).waitFor();
      assert.equal(held.sent(), 1);
    }
  });

  test('Sign in, and Enter in the password field meanwhile', async () => {
    const email = uniqueEmail('busy-signin');
    await apiVerifiedAccount(server, email, password);
    const p = await page();
    await p.goto(`${server.url}/sign-in`);
    await p.getByLabel('Email', { exact: true }).fill(email);
    await p.getByLabel('Password', { exact: true }).fill(password);
    const held = await pressWhileBusy(p, p.getByRole('button', { name: 'Sign in' }), 'Enter', /signIn\(/);
    await p.getByLabel('Password', { exact: true }).press('Enter');
    await p.evaluate(() => new Promise((r) => setTimeout(r, 300)));
    assert.equal(held.sent(), 1, 'Enter in a field while it runs sends nothing');
    held.release();
    await p.getByRole('heading', { name: 'You are signed in' }).waitFor();
    assert.equal(held.sent(), 1);
  });

  test('Send link and code (change of address)', async () => {
    const email = uniqueEmail('busy-old');
    await apiVerifiedAccount(server, email, password);
    const p = await page();
    await p.goto(`${server.url}/sign-in`);
    await p.getByLabel('Email', { exact: true }).fill(email);
    await p.getByLabel('Password', { exact: true }).fill(password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('button', { name: 'Change address' }).click();
    await p.getByLabel('New email address').fill(uniqueEmail('busy-new'));
    const held = await pressWhileBusy(p, p.getByRole('button', { name: 'Send link and code' }), 'Enter', /changeEmail\(/);
    held.release();
    await p.getByRole('heading', { name: 'Confirm your new address' }).waitFor();
    assert.equal(held.sent(), 1);
  });

  test('Verify code, whose focus then moves on to the way on', async () => {
    const email = uniqueEmail('busy-code');
    const p = await page();
    await signUp(p, server, email);
    // In the field without an input event, which would send it by itself.
    const code = await latestCode(server, email);
    await p.locator('#code').evaluate((el, c) => (el.value = c), code);
    const held = await pressWhileBusy(p, p.locator('#verify-code'), 'Enter', /verifyEmailWithCode\(/);
    held.release();
    await p.getByRole('heading', { name: 'You are all set' }).waitFor();
    assert.equal(held.sent(), 1);
    assert.equal(await focused(p), 'A:Sign in', 'the button went away: focus on to Sign in');
  });

  test('Confirm my email', async () => {
    const email = uniqueEmail('busy-confirm');
    await apiRegister(server, email);
    const p = await page();
    await p.goto(await latestLink(server, email));
    const held = await pressWhileBusy(p, p.getByRole('button', { name: 'Confirm my email' }), 'Space', /verifyEmail\(/);
    held.release();
    await p.getByRole('heading', { name: 'Email verified' }).waitFor();
    assert.equal(held.sent(), 1);
    assert.equal(await focused(p), 'H2:Email verified');
  });

  describe('on an expired link', () => {
    let short;
    before(async () => {
      short = await startServer({ TOKEN_TTL: '2s', RESEND_COOLDOWN: '1s' });
    });
    after(async () => short?.stop());

    test('Send me a new link', async () => {
      const email = uniqueEmail('busy-expired');
      const { p } = await openExpiredLink(short, page, email);
      await p.getByLabel('Your email').fill(email);
      const held = await pressWhileBusy(p, p.getByRole('button', { name: 'Send me a new link' }), 'Space', /resendVerificationEmail\(/);
      held.release();
      await p.getByText('a new link is on its way').waitFor();
      assert.equal(held.sent(), 1);
      assert.equal(await focused(p), 'BUTTON:Send me a new link');
    });
  });
});
