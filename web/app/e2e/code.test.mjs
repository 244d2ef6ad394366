// The one-time code on the waiting screen, and the way back to the app that
// sent the person here: Continue to its redirect_to with a receipt that the
// app's backend verifies with `jose` against the live JWKS. Run with
// `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apiVerify, browserPages, devMail, latestCode, latestLink, liveSaid, recordLiveRegions, signUp, startApp, startServer,
  uniqueEmail, verifyJWT,
} from './helpers.mjs';

const { page } = browserPages();
let server, app;

before(async () => {
  app = await startApp();
  server = await startServer({ RESEND_COOLDOWN: '3s', REDIRECT_ALLOWLIST: app.origin });
});
after(async () => {
  await server?.stop();
  await app?.stop();
});

const codeLabel = 'Or type the 6-digit code from the email';

/** Signs up through the form on a page opened with ?redirect_to=. */
async function signUpFrom(p, redirect, email) {
  await p.goto(`${server.url}/?redirect_to=${encodeURIComponent(redirect)}`);
  await p.getByLabel('Email', { exact: true }).fill(email);
  await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
  await p.getByRole('button', { name: 'Create account' }).click();
}

/** A code that is not `code`: its neighbour number `n` places on. */
const wrong = (code, n = 1) => String((Number(code) + n) % 1e6).padStart(6, '0');

const deadText = 'This code no longer works. Use the link in the email, or send a new email.';

/** Types the wrong codes that kill `code` into `field`, waiting for each
 * answer (a code typed while one is checked is not sent). */
async function killCode(p, field, code) {
  for (const [n, left] of [[1, '4 tries'], [2, '3 tries'], [3, '2 tries'], [4, '1 try']]) {
    await field.fill(wrong(code, n));
    await p.locator('#code-error').getByText(`That code is not right — ${left} left.`).waitFor();
  }
  await field.fill(wrong(code, 5));
  await p.locator('#code-error').getByText(deadText).waitFor();
}

/** What has the keyboard focus: BODY, INPUT#id, or the element's text. */
const focused = (p) => p.evaluate(() => {
  const el = document.activeElement;
  if (!el || el === document.body) return 'BODY';
  return el.tagName === 'INPUT' ? `INPUT#${el.id}` : `${el.tagName}:${el.textContent.trim()}`;
});

/** Past the next frame and a little more, for what a press may start. */
const settle = (p, ms = 50) => p.evaluate((ms) => new Promise((r) => requestAnimationFrame(() => setTimeout(r, ms))), ms);

describe('one-time code', () => {
  test('on a narrow phone the field still shows all six digits', async () => {
    for (const lang of ['en-US', 'de-DE']) {
      const p = await page({ viewport: { width: 320, height: 740 }, locale: lang });
      await p.goto(`${server.url}/`);
      await p.locator('#email').fill(uniqueEmail('narrow'));
      await p.locator('#password').fill('correct horse battery');
      await p.locator('form button[type=submit]').click();
      const field = p.locator('#code');
      await field.waitFor();
      // Five digits: a sixth would submit.
      await field.fill('88888');
      const { client, digit } = await field.evaluate((el) => {
        const s = getComputedStyle(el);
        const c = document.createElement('canvas').getContext('2d');
        c.font = `${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
        const digit = c.measureText('8').width + parseFloat(s.letterSpacing);
        return { client: el.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight), digit };
      });
      assert.ok(client >= 6 * digit, `${lang}: ${client}px of field for six digits of ${digit.toFixed(1)}px`);
    }
  });

  test('typed on the waiting screen, it verifies; Continue brings a receipt back to the app', async () => {
    const email = uniqueEmail('code');
    const redirect = `${app.origin}/welcome?from=verifier`;
    const p = await page();
    await signUpFrom(p, redirect, email);
    await p.getByRole('heading', { name: 'Check your inbox' }).waitFor();
    await p.getByText('Live', { exact: true }).waitFor();

    const field = p.getByLabel(codeLabel);
    assert.equal(await field.getAttribute('inputmode'), 'numeric', 'the phone shows digits');
    assert.equal(await field.getAttribute('autocomplete'), 'one-time-code');

    // Digit by digit, as a person types: the sixth submits by itself.
    const code = await latestCode(server, email);
    await p.getByLabel(codeLabel).click();
    await p.keyboard.type(code, { delay: 20 });
    await p.getByRole('heading', { name: 'You are all set' }).waitFor();
    await p.getByText('Your email is verified.').waitFor();
    assert.equal(await p.getByRole('status').filter({ hasText: 'Your email is verified.' }).count(), 1, 'a live region says so');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'continue', 'focus moves on from the field that went away');

    const go = p.getByRole('link', { name: 'Continue' });
    const href = await go.getAttribute('href');
    assert.ok(href.startsWith(`${redirect}#receipt=`), href);
    await go.click();
    await p.getByRole('heading', { name: 'Back in the app' }).waitFor();
    const landed = new URL(p.url());
    assert.equal(landed.origin + landed.pathname + landed.search, redirect);
    const receipt = landed.hash.slice('#receipt='.length);

    // The app's backend checks it offline, with a standard JOSE library.
    const claims = await verifyJWT(server, receipt, 'receipt');
    assert.equal(claims.email, email);
    assert.equal(claims.email_verified, true);
    assert.match(claims.sub, /^[0-9a-f-]{36}$/, 'sub is the user id');
    assert.ok(claims.exp > claims.iat);
    const [head, body, sig] = receipt.split('.');
    const tampered = `${head}.${body}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BA' : 'AA'}`;
    await assert.rejects(verifyJWT(server, tampered, 'receipt'), 'a tampered receipt fails');
    assert.ok(app.requests.every((u) => !u.includes(receipt)), 'the receipt never reaches the app server in a URL');
  });

  test('a pasted "123 456" works; without redirect_to the success screen offers sign-in', async () => {
    const email = uniqueEmail('paste');
    const p = await page({ viewport: { width: 360, height: 740 } });
    await signUp(p, server, email);
    const code = await latestCode(server, email);
    // fill() puts the whole string in at once and fires input, like a paste.
    await p.getByLabel(codeLabel).fill(`${code.slice(0, 3)} ${code.slice(3)}`);
    await p.getByRole('heading', { name: 'You are all set' }).waitFor();
    const signIn = p.getByRole('link', { name: 'Sign in' });
    assert.equal(await signIn.getAttribute('href'), '/sign-in');
    assert.equal(await p.getByRole('link', { name: 'Continue' }).count(), 0);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `scrolls sideways by ${overflow}px`);
  });

  test('a wrong code says how many tries are left, then that the code is dead; the link still works', async () => {
    const email = uniqueEmail('wrong');
    const p = await page();
    await signUp(p, server, email);
    await p.getByText('Live', { exact: true }).waitFor();
    const code = await latestCode(server, email);
    const field = p.getByLabel(codeLabel);

    await field.fill(wrong(code, 1));
    await p.locator('#code-error').getByText('That code is not right — 4 tries left.').waitFor();
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'code', 'focus stays on the field');
    await p.waitForFunction(() => document.querySelector('#announcer').textContent.includes('4 tries left'));

    for (const [n, left] of [[2, '3 tries'], [3, '2 tries'], [4, '1 try']]) {
      await field.fill(wrong(code, n));
      await p.locator('#code-error').getByText(`That code is not right — ${left} left.`).waitFor();
    }
    await field.fill(wrong(code, 5));
    await p.locator('#code-error').getByText(deadText).waitFor();
    assert.equal(await field.isEditable(), false);

    // The link in the email still works, and the screen flips live.
    await apiVerify(server, await latestLink(server, email));
    await p.getByRole('heading', { name: 'You are all set' }).waitFor();
  });

  test('a dead code leaves the field and Verify code unavailable but in the tab order: a press sends nothing, the field says what to do', async () => {
    const email = uniqueEmail('dead');
    const p = await page();
    await signUp(p, server, email);
    await p.getByText('Live', { exact: true }).waitFor();
    const code = await latestCode(server, email);
    const field = p.getByLabel(codeLabel);
    const button = p.locator('#verify-code');
    await killCode(p, field, code);
    await settle(p);
    assert.equal(await focused(p), 'BUTTON:Resend email', 'the focus moves on to the way on, not to the page body');

    let sent = 0;
    await p.route('**/query', (route) => {
      if (/verifyEmailWithCode\(/.test(route.request().postData() ?? '')) sent++;
      return route.fallback();
    });

    // Back from the way on, the keyboard finds the button, then the field:
    // unavailable, not disabled (which takes them out of the tab order).
    await p.keyboard.press('Shift+Tab');
    assert.equal(await focused(p), 'BUTTON:Verify code', 'Verify code stays in the tab order');
    assert.equal(await button.getAttribute('aria-disabled'), 'true', 'Verify code is unavailable to screen readers');
    assert.equal(await button.getAttribute('disabled'), null, 'Verify code is not disabled');
    await p.keyboard.press('Enter');
    await p.keyboard.press('Space');
    await button.click({ force: true });
    await settle(p, 300);
    assert.equal(sent, 0, 'a press on Verify code sends nothing');
    assert.equal(await focused(p), 'BUTTON:Verify code', 'and leaves the focus on it');

    await p.keyboard.press('Shift+Tab');
    assert.equal(await focused(p), 'INPUT#code', 'the field stays in the tab order');
    assert.equal(await field.getAttribute('aria-disabled'), 'true', 'the field is unavailable to screen readers');
    assert.equal(await field.getAttribute('disabled'), null, 'the field is not disabled');
    assert.equal(await field.evaluate((el) => el.readOnly), true, 'the field takes no typing');
    const before = await field.inputValue();
    await p.keyboard.press('Backspace');
    await p.keyboard.type('123456');
    await p.keyboard.press('Enter');
    await settle(p, 300);
    assert.equal(await field.inputValue(), before, 'typing changes nothing');
    assert.equal(sent, 0, 'typing, or Enter, in the field sends nothing');
    assert.equal(await focused(p), 'INPUT#code');

    // Announced as unavailable, and with what to do instead.
    assert.equal(await p.getByRole('textbox', { name: codeLabel, disabled: true }).count(), 1);
    assert.equal(await p.getByRole('button', { name: 'Verify code', disabled: true }).count(), 1);
    const described = await field.evaluate((el) => el.getAttribute('aria-describedby').split(' ').map((id) => document.getElementById(id).textContent).join(' '));
    assert.equal(described, deadText);

    // It looks unavailable, as a disabled one did.
    assert.equal(await field.evaluate((el) => getComputedStyle(el).opacity), '0.6');
    const [color, muted] = await button.evaluate((el) => {
      const probe = document.createElement('span');
      probe.style.color = 'var(--muted)';
      el.after(probe);
      const out = [getComputedStyle(el).color, getComputedStyle(probe).color];
      probe.remove();
      return out;
    });
    assert.equal(color, muted, 'Verify code in the muted colour');

    // The link in the email still works; the field that held the focus goes
    // away and the focus moves on to Sign in.
    await apiVerify(server, await latestLink(server, email));
    await p.getByRole('heading', { name: 'You are all set' }).waitFor();
    await settle(p);
    assert.equal(await focused(p), 'A:Sign in');
    assert.equal(sent, 0);
  });
});

const revivedText = 'Enter the code from the newest email, or use its link.';
const resentText = 'We sent a new link. Any earlier link still works.';

/** Waits until `ms` have passed since `since` (Date.now()). */
const outlive = (since, ms) => new Promise((r) => setTimeout(r, Math.max(0, since + ms - Date.now())));

/**
 * Presses Resend email, which holds the focus after the code died, with
 * the keyboard, and checks that the field came back: editable, available,
 * empty, saying so once through the polite announcer, and the focus still
 * on Resend email.
 */
async function resendRevives(p, field) {
  assert.equal(await focused(p), 'BUTTON:Resend email', 'the dead code left the focus on Resend email');
  await recordLiveRegions(p);
  await p.keyboard.press('Enter');
  await p.locator('.note', { hasText: resentText }).waitFor();
  await settle(p);
  assert.equal(await field.isEditable(), true, 'the field takes typing again');
  assert.equal(await field.getAttribute('aria-disabled'), null, 'the field is available to screen readers');
  assert.equal(await field.getAttribute('aria-invalid'), null, 'the field is not marked wrong');
  assert.equal(await field.inputValue(), '', 'the dead code is gone from the field');
  assert.equal(await p.locator('#verify-code').getAttribute('aria-disabled'), null, 'Verify code is available');
  assert.equal(await p.getByRole('textbox', { name: codeLabel, disabled: false }).count(), 1);
  assert.equal(await p.getByRole('button', { name: 'Verify code', disabled: false }).count(), 1);
  const described = await field.evaluate((el) => el.getAttribute('aria-describedby').split(' ').map((id) => document.getElementById(id).textContent).join(' '));
  assert.equal(described, revivedText, 'the field no longer says the code is dead');
  assert.equal(await focused(p), 'BUTTON:Resend email', 'the focus stays where the resend left it');
  const said = (await liveSaid(p)).filter((s) => s.text.includes(revivedText));
  assert.deepEqual(said, [{ id: 'announcer', text: revivedText }], 'said once, by the polite announcer');
}

describe('Resend email brings a dead code field back', () => {
  // CODE_TTL's least is a minute: the expired test waits it out.
  let short;
  before(async () => {
    short = await startServer({ CODE_TTL: '1m', RESEND_COOLDOWN: '1s' });
  });
  after(async () => {
    await short?.stop();
  });

  test('an expired code: the new email has a new code, the field takes it and the address is verified', async () => {
    const email = uniqueEmail('expired');
    const p = await page();
    await signUp(p, short, email);
    await p.getByText('Live', { exact: true }).waitFor();
    const code = await latestCode(short, email);
    await new Promise((r) => setTimeout(r, 61_000)); // outlive CODE_TTL
    const field = p.getByLabel(codeLabel);
    await field.fill(code);
    await p.locator('#code-error').getByText(deadText).waitFor();
    assert.equal(await field.isEditable(), false, 'the expired code killed the field');
    await settle(p);

    await resendRevives(p, field);
    const fresh = await latestCode(short, email, { after: code });
    await field.click();
    await p.keyboard.type(fresh, { delay: 20 });
    await p.getByRole('heading', { name: 'You are all set' }).waitFor();
    await p.getByText('Your email is verified.').waitFor();
  });

  test('tries spent: the field comes back, the new email has the link only, a code typed kills the field again, the link verifies', async () => {
    const email = uniqueEmail('spent');
    const p = await page();
    await signUp(p, short, email);
    const signedUp = Date.now();
    await p.getByText('Live', { exact: true }).waitFor();
    const code = await latestCode(short, email);
    const first = await latestLink(short, email);
    const field = p.getByLabel(codeLabel);
    await killCode(p, field, code);
    await settle(p);
    await outlive(signedUp, 1100); // RESEND_COOLDOWN

    await resendRevives(p, field);
    const link = await latestLink(short, email, { after: first });
    const mail = (await devMail(short)).find((m) => m.to === email);
    assert.equal(mail.link, link);
    assert.doesNotMatch(mail.text, /code:/i, 'the new email has no code');

    // Any code, the old one too, is refused: the field dies again.
    let sent = 0;
    await p.route('**/query', (route) => {
      if (/verifyEmailWithCode\(/.test(route.request().postData() ?? '')) sent++;
      return route.fallback();
    });
    await field.click();
    await p.keyboard.type(code, { delay: 20 });
    await p.locator('#code-error').getByText(deadText).waitFor();
    assert.equal(sent, 1, 'the code was sent to the server');
    assert.equal(await field.isEditable(), false);
    assert.equal(await field.getAttribute('aria-disabled'), 'true');
    assert.equal(await p.locator('#verify-code').getAttribute('aria-disabled'), 'true');
    await settle(p);
    assert.equal(await focused(p), 'BUTTON:Resend email');

    await apiVerify(short, link);
    await p.getByRole('heading', { name: 'You are all set' }).waitFor();
  });
});

describe('the confirm page', () => {
  test('offers Continue with a receipt when the sign-up had redirect_to', async () => {
    const email = uniqueEmail('link');
    const redirect = `${app.origin}/after-link`;
    const a = await page();
    await signUpFrom(a, redirect, email);
    await a.getByRole('heading', { name: 'Check your inbox' }).waitFor();

    const b = await page();
    await b.goto(await latestLink(server, email));
    await b.getByRole('button', { name: 'Confirm my email' }).click();
    await b.getByRole('heading', { name: 'Email verified' }).waitFor();
    const href = await b.getByRole('link', { name: 'Continue' }).getAttribute('href');
    assert.ok(href.startsWith(`${redirect}#receipt=`), href);
    const claims = await verifyJWT(server, href.split('#receipt=')[1], 'receipt');
    assert.equal(claims.email, email);

    // The waiting screen flipped live and offers the same way on, with a
    // receipt of its own.
    await a.getByRole('heading', { name: 'You are all set' }).waitFor();
    const live = await a.getByRole('link', { name: 'Continue' }).getAttribute('href');
    assert.ok(live.startsWith(`${redirect}#receipt=`), live);
    await verifyJWT(server, live.split('#receipt=')[1], 'receipt');
  });

  test('a redirect_to outside the allowed origins is refused at sign-up', async () => {
    const p = await page();
    await signUpFrom(p, 'https://elsewhere.example/', uniqueEmail('elsewhere'));
    await p.getByText('asks to return to a site we may not send you to').waitFor();
    await p.getByRole('link', { name: 'Sign up without it' }).waitFor();
    assert.equal(await p.getByRole('heading', { name: 'Create your account' }).count(), 1);
  });
});
