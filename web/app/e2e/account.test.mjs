// /sign-in: signing in (gated on verification), the signed-in view, and
// changing the address with the code mailed to the new one. Run with
// `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apiRegister, apiVerifiedAccount, assertStill, browserPages, gql, latestCode, liveSaid, mousePress, recordLiveRegions,
  startServer, uniqueEmail, verifyJWT,
} from './helpers.mjs';

const { page } = browserPages();
let server;
const password = 'correct horse battery';

before(async () => {
  // A long cooldown: the resend countdown is certain to show.
  server = await startServer({ RESEND_COOLDOWN: '60s' });
});
after(async () => {
  await server?.stop();
});

async function signInWith(p, email, pw = password) {
  await p.goto(`${server.url}/sign-in`);
  await p.getByLabel('Email', { exact: true }).fill(email);
  await p.getByLabel('Password', { exact: true }).fill(pw);
  await p.getByRole('button', { name: 'Sign in' }).click();
}

// Signs in as email and asks to move the account to next, up to the
// screen that waits for the new address's code.
async function startChange(p, email, next) {
  await signInWith(p, email);
  await p.getByRole('button', { name: 'Change address' }).click();
  await p.getByLabel('New email address').fill(next);
  await p.getByRole('button', { name: 'Send link and code' }).click();
  await p.getByRole('heading', { name: 'Confirm your new address' }).waitFor();
}

const signedIn = (p) => p.evaluate(() => JSON.parse(sessionStorage.getItem('verifier.signedIn') ?? 'null'));

describe('sign-in', () => {
  test('an unconfirmed address is told so and offered a new link', async () => {
    const email = uniqueEmail('unconfirmed');
    await apiRegister(server, email, password);
    const p = await page();
    await signInWith(p, email);
    await p.getByText('This address is not confirmed yet.').waitFor();
    const resend = p.getByRole('button', { name: 'Send me a new link' });
    assert.equal(await p.evaluate(() => document.activeElement.id), 'resend', 'focus moves to the way on');
    // The sign-up email went out a moment ago: the cooldown counts down.
    await resend.click();
    await p.getByText(/Send again in \d+ s/).waitFor();
    assert.equal(await p.locator('#resend').isDisabled(), true);
    assert.equal(await signedIn(p), null);
  });

  test('a wrong password and an unknown address get the same answer', async () => {
    const email = uniqueEmail('known');
    await apiVerifiedAccount(server, email, password);
    const p = await page();
    await signInWith(p, email, 'not the password');
    const error = p.locator('#signin-error');
    await error.filter({ hasText: /\S/ }).waitFor();
    const wrongPassword = await error.textContent();
    await signInWith(p, uniqueEmail('nobody'));
    await error.filter({ hasText: /\S/ }).waitFor();
    assert.equal(await error.textContent(), wrongPassword);
    assert.match(wrongPassword, /do not match/);
  });

  // The answer takes two lines at 360 px; it comes under Sign in, so a
  // press again at once lands on it.
  test('the answer to a wrong password leaves Sign in under the pointer (360 px)', async () => {
    const email = uniqueEmail('still');
    await apiVerifiedAccount(server, email, password);
    const p = await page({ viewport: { width: 360, height: 800 } });
    await p.goto(`${server.url}/sign-in`);
    await p.getByLabel('Email', { exact: true }).fill(email);
    await p.getByLabel('Password', { exact: true }).fill('not the password');
    const submit = p.getByRole('button', { name: 'Sign in' });
    const top = (await submit.boundingBox()).y;
    assert.equal(await mousePress(p, submit), 0, 'moved while pressed');
    const error = p.locator('#signin-error');
    await error.getByText(/do not match/).waitFor();
    assert.ok((await error.boundingBox()).height > 30, 'the answer takes two lines');
    await assertStill(submit, top, 'Sign in, when the answer showed');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'password', 'on to the password');
    await p.keyboard.type(password);
    await p.mouse.down();
    await p.mouse.up();
    await p.getByRole('heading', { name: 'You are signed in' }).waitFor({ timeout: 3000 });
  });

  // The failed tries count in clock hours, so a lock lasts until the hour
  // ends: in the last 90 s of an hour it is rightly said in seconds, and
  // the test then checks that; in the other 58½ minutes, minutes. What
  // the page is told is read from its own request's answer.
  test('an address locked by wrong passwords says how long in minutes, not thousands of seconds', async () => {
    const email = uniqueEmail('locked');
    await apiVerifiedAccount(server, email, password);
    // Wrong passwords until the server locks the address (until the hour ends).
    let locked = false;
    for (let i = 0; i < 30 && !locked; i++) {
      const r = await gql(server, 'mutation($e:String!,$p:String!){signIn(email:$e,password:$p){token}}', { e: email, p: `wrong password ${i}` });
      locked = r.errors?.[0]?.extensions?.code === 'RATE_LIMITED';
    }
    assert.ok(locked, 'locked after at most 30 wrong passwords');
    const said = {
      'en-US': (n) => n > 90 ? `Please wait ${Math.ceil(n / 60)} minutes before trying again.` : `Please wait ${n} seconds before trying again.`,
      'de-DE': (n) => n > 90 ? `Bitte warte ${Math.ceil(n / 60)} Minuten, bevor du es erneut versuchst.` : `Bitte warte ${n} Sekunden, bevor du es erneut versuchst.`,
    };
    const button = { 'en-US': 'Try again in ', 'de-DE': 'Erneut versuchen in ' };
    for (const locale of ['en-US', 'de-DE']) {
      const p = await page({ locale });
      await p.goto(`${server.url}/sign-in`);
      await p.locator('#email').fill(email);
      await p.locator('#password').fill(password);
      const answer = p.waitForResponse((r) => r.url().endsWith('/query') && /signIn/.test(r.request().postData() ?? ''));
      await p.locator('form button[type=submit]').click();
      const wait = (await (await answer).json()).errors?.[0]?.extensions?.retryAfterSeconds;
      assert.ok(wait > 0, `${locale}: locked, retryAfterSeconds ${wait}`);
      await p.locator('#signin-error').getByText(/\S/).waitFor();
      assert.equal(await p.locator('#signin-error').textContent(), said[locale](wait), locale);
      // A minute (or a few seconds) off at most: the lock went on counting meanwhile.
      const shown = await p.locator('form button[type=submit]').textContent();
      if (wait > 95) {
        const minutes = Math.ceil(wait / 60);
        assert.match(shown, new RegExp(`^${button[locale]}(${minutes}|${minutes - 1}) min$`), locale);
      } else if (wait <= 90) {
        assert.match(shown, new RegExp(`^${button[locale]}\\d+ s$`), locale);
      }
    }
  });

  test('a verified address signs in with the keyboard, survives a reload, and signs out', async () => {
    const email = uniqueEmail('verified');
    await apiVerifiedAccount(server, email, password);
    const p = await page();
    await p.goto(`${server.url}/sign-in`);
    assert.equal(await p.evaluate(() => document.activeElement.tagName), 'H1', 'focus starts at the heading');
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'email');
    await p.keyboard.type(email);
    await p.keyboard.press('Tab');
    await p.keyboard.type(password);
    await p.keyboard.press('Enter');
    await p.getByRole('heading', { name: 'You are signed in' }).waitFor();
    assert.equal(await p.locator('#address').textContent(), email, 'the address from the token');

    const stored = await signedIn(p);
    const claims = await verifyJWT(server, stored.token, 'session');
    assert.equal(claims.email, email);
    assert.equal(await p.evaluate(() => localStorage.length), 0, 'nothing in localStorage');

    await p.reload();
    await p.getByRole('heading', { name: 'You are signed in' }).waitFor();
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'change-address');
    await p.getByRole('button', { name: 'Sign out' }).click();
    await p.getByRole('heading', { name: 'Sign in' }).waitFor();
    await p.getByText('You are signed out.').waitFor();
    assert.equal(await signedIn(p), null);
  });
});

describe('change address', () => {
  /** Signs a new verified account in on a new page and opens Change
   * address; sent.changes counts the changeEmail requests the page makes. */
  async function toChangeAddress(tag, opts) {
    const email = uniqueEmail(tag);
    await apiVerifiedAccount(server, email, password);
    const p = await page(opts);
    const sent = { changes: 0 };
    p.on('request', (r) => {
      if (r.url().endsWith('/query') && /changeEmail\(/.test(r.postData() ?? '')) sent.changes++;
    });
    await signInWith(p, email);
    await p.getByRole('button', { name: 'Change address' }).click();
    return { p, sent };
  }

  test('a typo in a common mail domain is offered its fix before anything is sent', async () => {
    const { p, sent } = await toChangeAddress('typo-old');
    const name = `typo-new-${Date.now()}`;
    const field = p.getByLabel('New email address');
    await field.fill(`${name}@hotmial.com`);
    await p.getByRole('button', { name: 'Send link and code' }).click();
    const suggestion = p.locator('#new-email-suggestion');
    await suggestion.getByText(`${name}@hotmail.com`).waitFor({ timeout: 3000 });
    assert.equal(await suggestion.innerText(), `Did you mean ${name}@hotmail.com? Use it`);
    assert.equal(sent.changes, 0, 'nothing sent yet');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'new-email', 'back to the address');
    await p.getByRole('button', { name: 'Use it' }).click();
    assert.equal(await field.inputValue(), `${name}@hotmail.com`);
    await p.getByRole('button', { name: 'Send link and code' }).click();
    await p.getByRole('heading', { name: 'Confirm your new address' }).waitFor();
    assert.match(await p.locator('.lead').innerText(), new RegExp(`${name}@\\s*hotmail\\.com`));
    assert.equal(sent.changes, 1);
  });

  // At 360 px the hint takes two lines, one more than the field's empty
  // error line whose place it takes.
  for (const width of [1280, 360]) {
    test(`the "Did you mean" hint does not move Send link and code from under the pointer (${width} px)`, async () => {
      const { p } = await toChangeAddress('hint-old', { viewport: { width, height: 800 } });
      const name = `bob${Date.now() % 100000}`;
      const field = p.getByLabel('New email address');
      await field.fill(`${name}@hotmial.com`);
      const send = p.getByRole('button', { name: 'Send link and code' });
      const top = (await send.boundingBox()).y;
      assert.equal(await mousePress(p, send), 0, 'moved while pressed');
      await p.locator('#new-email-suggestion').getByText(`${name}@hotmail.com`).waitFor({ timeout: 3000 });
      await assertStill(send, top, 'Send link and code, when the hint showed');
      // The typo fixed by hand, and a press at once where the button was.
      await field.fill(`${name}@hotmail.com`);
      await assertStill(send, top, 'Send link and code, as the address was edited');
      await p.mouse.down();
      await p.mouse.up();
      await p.getByRole('heading', { name: 'Confirm your new address' }).waitFor({ timeout: 3000 });
      assert.match(await p.locator('.lead').innerText(), new RegExp(`${name}@\\s*hotmail\\.com`));
    });
  }

  // At 360 px the error takes two lines, one more than its field keeps.
  test('a part before the @ over 64 bytes says so at once, before anything is sent, with Send link and code left under the pointer (360 px)', async () => {
    const { p, sent } = await toChangeAddress('local-old', { viewport: { width: 360, height: 800 } });
    const field = p.getByLabel('New email address');
    await field.fill('b'.repeat(65) + '@example.com');
    const send = p.getByRole('button', { name: 'Send link and code' });
    const top = (await send.boundingBox()).y;
    assert.equal(await mousePress(p, send), 0, 'moved while pressed');
    await p.waitForTimeout(300);
    await assertStill(send, top, 'Send link and code, when the error showed');
    assert.equal(await p.locator('#new-email-error').textContent(), 'The part before the @ can be at most 64 characters.');
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'new-email', 'back to the address');
    assert.equal(sent.changes, 0, 'nothing sent');
  });

  test('a code that dies under the focus moves it to "Use a different address"', async () => {
    const email = uniqueEmail('dead-old');
    const next = uniqueEmail('dead-new');
    await apiVerifiedAccount(server, email, password);
    const p = await page();
    await startChange(p, email, next);
    const code = await latestCode(server, next);
    const field = p.getByLabel('The 6-digit code from that email');
    for (let n = 1; n <= 5; n++) {
      await field.focus();
      await field.fill(String((Number(code) + n) % 1e6).padStart(6, '0'));
      await p.locator('#code-error').getByText(n < 5 ? /(tries|try) left/ : /no longer works/).waitFor();
      if (n < 5) await p.waitForFunction(() => document.activeElement.id === 'code');
    }
    assert.equal(await field.getAttribute('aria-disabled'), 'true', 'unavailable to screen readers');
    assert.equal(await field.getAttribute('disabled'), null, 'not disabled: it keeps its place in the tab order');
    assert.equal(await p.locator('#verify-code').getAttribute('aria-disabled'), 'true');
    await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r))));
    assert.equal(await p.evaluate(() => (document.activeElement === document.body ? 'BODY' : document.activeElement.textContent)), 'Use a different address');
  });

  test('the code from the new address confirms the change', async () => {
    const email = uniqueEmail('old');
    const next = uniqueEmail('new');
    await apiVerifiedAccount(server, email, password);
    const p = await page();
    await signInWith(p, email);
    await p.getByRole('button', { name: 'Change address' }).click();
    await p.getByRole('heading', { name: 'Change your address' }).waitFor();
    await p.getByLabel('New email address').fill(next);
    await p.getByRole('button', { name: 'Send link and code' }).click();
    await p.getByRole('heading', { name: 'Confirm your new address' }).waitFor();
    await p.getByText(`We sent a link and a code to ${next}; nothing changes until you confirm.`).waitFor();

    // A reload keeps the screen.
    await p.reload();
    await p.getByRole('heading', { name: 'Confirm your new address' }).waitFor();

    const code = await latestCode(server, next);
    await p.getByLabel('The 6-digit code from that email').fill(code);
    await p.getByRole('heading', { name: 'You are signed in' }).waitFor();
    assert.equal(await p.locator('#address').textContent(), next);
    await p.locator('.notice').getByText(`Your address is now ${next}.`).waitFor();

    // The new address signs in; the old one no longer does.
    const ok = await gql(server, 'mutation($e:String!,$p:String!){signIn(email:$e,password:$p){token}}', { e: next, p: password });
    assert.equal(ok.errors, undefined, JSON.stringify(ok.errors));
    const old = await gql(server, 'mutation($e:String!,$p:String!){signIn(email:$e,password:$p){token}}', { e: email, p: password });
    assert.equal(old.errors?.[0]?.extensions?.code, 'INVALID_CREDENTIALS');
  });

  test('a changed address is said once to screen readers, by one live region, and no heading takes the focus', async () => {
    const email = uniqueEmail('once-old');
    const next = uniqueEmail('once-new');
    await apiVerifiedAccount(server, email, password);
    const p = await page();
    await startChange(p, email, next);
    const code = await latestCode(server, next);
    await recordLiveRegions(p);
    await p.locator('#code').focus();
    await p.keyboard.type(code);
    await p.getByRole('heading', { name: 'You are signed in' }).waitFor();
    const text = `Your address is now ${next}.`;
    const said = (await liveSaid(p)).filter((x) => /address is now/.test(x.text));
    // Every live region holding the message, said or not.
    const regions = await p.locator('[aria-live]:not([aria-live="off"]), [role="status"], [role="alert"], [role="log"]')
      .filter({ hasText: text }).count();
    const focused = await p.evaluate(() => `${document.activeElement.tagName}:${document.activeElement.textContent.trim()}`);
    assert.deepEqual({ said, regions, focused }, {
      said: [{ id: 'notice', text }],
      regions: 1,
      focused: 'BUTTON:Change address',
    }, 'said by the notice alone; the focus goes on from the code field that went away, not to the heading');
    assert.equal(await p.locator('#address').textContent(), next);
    assert.equal(await p.title(), 'Signed in · verifier');
  });

  test('an ended session goes back to sign-in with a message', async () => {
    const p = await page();
    await p.goto(`${server.url}/sign-in`);
    // A token the server never signed, shaped like one.
    await p.evaluate(() => {
      const b64 = (o) => btoa(JSON.stringify(o)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
      const token = `${b64({ alg: 'EdDSA' })}.${b64({ email: 'forged@example.com' })}.AAAA`;
      sessionStorage.setItem('verifier.signedIn', JSON.stringify({
        token, email: 'forged@example.com', expiresAt: new Date(Date.now() + 3600e3).toISOString(),
      }));
    });
    await p.reload();
    await p.getByRole('heading', { name: 'You are signed in' }).waitFor();
    await p.getByRole('button', { name: 'Change address' }).click();
    await p.getByLabel('New email address').fill(uniqueEmail('elsewhere'));
    await p.getByRole('button', { name: 'Send link and code' }).click();
    await p.getByRole('heading', { name: 'Sign in' }).waitFor();
    await p.getByText('Your session has ended. Please sign in again.').waitFor();
    assert.equal(await signedIn(p), null);
  });

  for (const width of [360, 1280]) {
    test(`nothing overflows at ${width} px`, async () => {
      const p = await page({ viewport: { width, height: 800 } });
      await p.goto(`${server.url}/sign-in`);
      await p.getByLabel('Email', { exact: true }).fill(uniqueEmail('a-rather-long-address-to-wrap'));
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `scrolls sideways by ${overflow}px`);
    });
  }
});
