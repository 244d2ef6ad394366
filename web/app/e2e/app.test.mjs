// Browser end-to-end tests: Debian's Chromium driven by playwright-core
// against the real server binary. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apiRegister, apiVerify, browserPages, latestCode, latestLink, liveSaid, openExpiredLink, openPage, recordLiveRegions, signUp,
  startServer, uniqueEmail,
} from './helpers.mjs';

// Every page of a test ends without console errors or uncaught exceptions.
const chromium = browserPages();
const { page } = chromium;
let server;

before(async () => {
  server = await startServer({ RESEND_COOLDOWN: '3s' });
});
after(async () => {
  await server?.stop();
});

describe('verification', () => {
  test('sign up, confirm on another device, and the first screen flips live', async () => {
    const email = uniqueEmail('flow');
    const a = await page();
    await signUp(a, server, email);
    await a.getByText(email).first().waitFor();
    await a.getByText('Live', { exact: true }).waitFor();
    await a.evaluate(() => (window.__notReloaded = true));

    // Another device: its own browser context, opening the emailed link.
    const link = await latestLink(server, email);
    const b = await page({ viewport: { width: 360, height: 740 } });
    await b.goto(link);
    await b.getByRole('heading', { name: 'Confirm your email' }).waitFor();
    assert.equal(new URL(b.url()).search, '', 'the token leaves the address bar');
    await b.getByRole('button', { name: 'Confirm my email' }).click();
    await b.getByRole('heading', { name: 'Email verified' }).waitFor();

    await a.getByText('Your email is verified.').waitFor({ timeout: 2000 });
    assert.equal(await a.evaluate(() => window.__notReloaded), true, 'no reload');
    await a.getByRole('heading', { name: 'You are all set' }).waitFor();
    assert.equal(await a.getByRole('status').filter({ hasText: 'Your email is verified.' }).count(), 1, 'a live region says so');

    // The same link again: already verified, not an error.
    const c = await page();
    await c.goto(link);
    await c.getByRole('button', { name: 'Confirm my email' }).click();
    await c.getByRole('heading', { name: 'Already verified' }).waitFor();
  });

  test('a verification is said once to screen readers, by one live region or the focused heading', async () => {
    const verifiedSaid = async (p) => (await liveSaid(p)).filter((s) => /verified/i.test(s.text));
    const focused = (p) => p.evaluate(() => `${document.activeElement.tagName}#${document.activeElement.id}:${document.activeElement.textContent.trim()}`);

    // By the code, typed in the field that then goes away.
    const email = uniqueEmail('once');
    const a = await page();
    await signUp(a, server, email);
    await a.getByText('Live', { exact: true }).waitFor();
    await recordLiveRegions(a);
    await a.locator('#code').focus();
    await a.keyboard.type(await latestCode(server, email));
    await a.getByRole('heading', { name: 'You are all set' }).waitFor();
    assert.deepEqual(await verifiedSaid(a), [{ id: 'status', text: 'Your email is verified.' }], 'the status region alone says it');
    assert.equal(await focused(a), 'A#sign-in:Sign in', 'focus goes on to the way on, not to a heading saying it again');

    // Confirmed on another device: the same, and the focus stays put.
    const other = uniqueEmail('once');
    const b = await page();
    await signUp(b, server, other);
    await b.getByText('Live', { exact: true }).waitFor();
    await recordLiveRegions(b);
    await apiVerify(server, await latestLink(server, other));
    await b.getByRole('heading', { name: 'You are all set' }).waitFor();
    assert.deepEqual(await verifiedSaid(b), [{ id: 'status', text: 'Your email is verified.' }]);
    assert.equal(await focused(b), 'H1#:You are all set');

    // The confirm page: its heading takes the focus from the button, and
    // no live region says it besides.
    const third = uniqueEmail('once');
    await apiRegister(server, third);
    const c = await page();
    await c.goto(await latestLink(server, third));
    await recordLiveRegions(c);
    await c.getByRole('button', { name: 'Confirm my email' }).click();
    await c.getByRole('heading', { name: 'Email verified' }).waitFor();
    assert.deepEqual(await verifiedSaid(c), []);
    assert.equal(await focused(c), 'H2#:Email verified');
  });

  test('a long address wraps after its @, not inside the name', async () => {
    // Phone widths where the address used to break inside the number, or
    // after 'ada-'.
    for (const width of [320, 360, 390]) {
      const email = uniqueEmail('ada');
      const p = await page({ viewport: { width, height: 740 } });
      await signUp(p, server, email);
      const lines = await p.locator('.lead .address').evaluate((el) => {
        // The text on each line the address takes, read from the layout.
        const text = el.firstChild.firstChild;
        const range = document.createRange();
        const out = [];
        for (let i = 0; i < text.length; i++) {
          range.setStart(text, i);
          range.setEnd(text, i + 1);
          const top = Math.round(range.getBoundingClientRect().top);
          if (out.at(-1)?.top !== top) out.push({ top, text: '' });
          out.at(-1).text += text.data[i];
        }
        return out.map((l) => l.text);
      });
      assert.deepEqual(lines, [email.slice(0, email.indexOf('@') + 1)], `${width} px: the name and its @ on one line`);
      assert.equal(await p.locator('.lead .address').textContent(), email);
    }
  });

  test('opening the link alone verifies nothing', async () => {
    const email = uniqueEmail('get');
    const watch = await apiRegister(server, email);
    const p = await page();
    await p.goto(await latestLink(server, email));
    await p.getByRole('button', { name: 'Confirm my email' }).waitFor();
    const r = await fetch(`${server.url}/query`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: 'query($w:String!){verificationStatus(watchToken:$w)}', variables: { w: watch } }),
    });
    assert.equal((await r.json()).data.verificationStatus, 'UNVERIFIED');
  });

  test('a reload keeps watching', async () => {
    const email = uniqueEmail('reload');
    const p = await page();
    await signUp(p, server, email);
    await p.reload();
    await p.getByRole('heading', { name: 'Check your inbox' }).waitFor();
    await p.getByText('Live', { exact: true }).waitFor();
    await apiVerify(server, await latestLink(server, email));
    await p.getByText('Your email is verified.').waitFor({ timeout: 2000 });
  });

  test('start over returns to an empty sign-up form', async () => {
    const p = await page();
    await signUp(p, server, uniqueEmail('over'));
    await p.getByRole('button', { name: 'Wrong address? Start over' }).click();
    await p.getByRole('heading', { name: 'Create your account' }).waitFor();
    await p.reload();
    await p.getByRole('heading', { name: 'Create your account' }).waitFor();
  });

  test('resend counts down while rate limited, then works', async () => {
    const p = await page();
    await signUp(p, server, uniqueEmail('resend'));
    const resend = p.locator('#resend');
    await resend.click();
    await p.getByText(/Resend in \d s/).waitFor();
    assert.equal(await resend.isDisabled(), true);
    const first = Number((await resend.textContent()).match(/\d+/)[0]);
    await p.waitForFunction((n) => {
      const m = document.querySelector('#resend').textContent.match(/\d+/);
      return m && Number(m[0]) < n;
    }, first);
    await p.getByRole('button', { name: 'Resend email' }).waitFor({ timeout: 10000 });
    assert.equal(await resend.isDisabled(), false);
    await resend.click();
    await p.getByText('We sent a new link.').waitFor();
  });

  test('resend keeps the keyboard focus while it counts down, and ignores presses', async () => {
    const p = await page();
    await signUp(p, server, uniqueEmail('resend-focus'));
    const resend = p.locator('#resend');
    await resend.focus();
    await p.keyboard.press('Enter');
    await p.getByText(/Resend in \d s/).waitFor();
    const focused = () => p.evaluate(() => document.activeElement.id || document.activeElement.tagName);
    assert.equal(await focused(), 'resend', 'focus stays on the counting-down button');
    assert.equal(await resend.getAttribute('aria-disabled'), 'true', 'unavailable to screen readers');
    assert.equal(await resend.getAttribute('disabled'), null, 'not disabled: that would drop the focus');
    // A press while it counts down sends nothing.
    const sent = [];
    p.on('request', (r) => {
      if (r.url().endsWith('/query') && r.postData()?.includes('resendVerificationEmail')) sent.push(r.url());
    });
    await p.keyboard.press('Enter');
    await resend.click({ force: true });
    await p.getByRole('button', { name: 'Resend email' }).waitFor({ timeout: 10000 });
    assert.deepEqual(sent, [], 'no resend while counting down');
    assert.equal(await focused(), 'resend', 'focus still there when the label comes back');
    assert.equal(await resend.getAttribute('aria-disabled'), null);
  });

  test('a counting-down button stays readable in light and dark', async () => {
    for (const colorScheme of ['light', 'dark']) {
      const p = await page({ colorScheme });
      await signUp(p, server, uniqueEmail('contrast'));
      await p.locator('#resend').click();
      await p.getByText(/Resend in \d s/).waitFor();
      const ratio = await p.locator('#resend').evaluate((el) => {
        const rgb = (c) => c.match(/[\d.]+/g).map(Number);
        const lum = ([r, g, b]) => {
          const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
          return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
        };
        // The first ancestor with a background of its own is what the text is on.
        let bg = el;
        while (rgb(getComputedStyle(bg).backgroundColor)[3] === 0) bg = bg.parentElement;
        const style = getComputedStyle(el);
        if (Number(style.opacity) !== 1) return 0;
        const [a, b] = [lum(rgb(style.color)), lum(rgb(getComputedStyle(bg).backgroundColor))];
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      });
      assert.ok(ratio >= 4.5, `${colorScheme}: contrast ${ratio.toFixed(2)}:1 of the disabled button's text`);
    }
  });

  test('an invalid link says so', async () => {
    const p = await page();
    await p.goto(`${server.url}/verify-email?token=${'A'.repeat(43)}`);
    await p.getByRole('button', { name: 'Confirm my email' }).click();
    await p.getByRole('heading', { name: 'This link is not valid' }).waitFor();
    const q = await page();
    await q.goto(`${server.url}/verify-email`);
    await q.getByRole('heading', { name: 'This link is not valid' }).waitFor();
  });

  test('wrong input shows the server rules in plain words', async () => {
    const p = await page();
    await p.goto(server.url + '/');
    await p.getByLabel('Email', { exact: true }).fill('not-an-email');
    await p.getByLabel('Password', { exact: true }).fill('short');
    await p.getByRole('button', { name: 'Create account' }).click();
    await p.getByText('Enter an email address like name@example.com.').waitFor();
    await p.getByText('Use at least 8 characters.').waitFor();
    assert.equal(await p.getByLabel('Email', { exact: true }).getAttribute('aria-invalid'), 'true');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'email', 'focus moves to the first mistake');
  });

  test('an address too long in bytes says so at once, as the server would', async () => {
    const p = await page();
    let sent = 0;
    p.on('request', (r) => { if (r.url().endsWith('/query') && (r.postData() ?? '').includes('register')) sent++; });
    await p.goto(server.url + '/');
    // 185 characters, 365 bytes: the server's limit (254) is SMTP's, in bytes.
    const e = 'é'.repeat(60) + '@' + 'é'.repeat(60) + '.' + 'é'.repeat(60) + '.de';
    await p.getByLabel('Email', { exact: true }).fill(e);
    await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await p.getByRole('button', { name: 'Create account' }).click();
    await p.getByText('That email address is too long.').waitFor();
    assert.equal(sent, 0, 'nothing sent');
  });

  test('a typo in a common mail domain is offered its fix before any email goes out, and kept on a second press', async () => {
    const p = await page();
    let registers = 0;
    p.on('request', (r) => {
      if (r.url().endsWith('/query') && /register\(/.test(r.postData() ?? '')) registers++;
    });
    const name = `typo-${Date.now()}`;
    await p.goto(server.url + '/');
    await p.getByLabel('Email', { exact: true }).fill(`${name}@gmail.con`);
    await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
    const create = p.getByRole('button', { name: 'Create account' });
    await create.click();
    const suggestion = p.locator('#email-suggestion');
    await suggestion.getByText(`${name}@gmail.com`).waitFor({ timeout: 3000 });
    assert.equal(await suggestion.innerText(), `Did you mean ${name}@gmail.com? Use it`);
    assert.equal(registers, 0, 'nothing sent yet');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'email', 'back to the address');
    assert.match(await p.getByLabel('Email', { exact: true }).getAttribute('aria-describedby'), /email-suggestion/);
    await p.getByRole('button', { name: 'Use it' }).click();
    assert.equal(await p.getByLabel('Email', { exact: true }).inputValue(), `${name}@gmail.com`);
    assert.equal(await suggestion.textContent(), '');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'email', 'the focus stays on the address');
    await create.click();
    await p.getByRole('heading', { name: 'Check your inbox' }).waitFor();
    assert.match(await p.locator('.lead').innerText(), new RegExp(`${name}@\\s*gmail\\.com`));

    // Such a domain may be real: the second press keeps it.
    const q = await page();
    await q.goto(server.url + '/');
    await q.getByLabel('Email', { exact: true }).fill(`${name}@gmail.con`);
    await q.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await q.getByRole('button', { name: 'Create account' }).click();
    await q.locator('#email-suggestion').getByText(`${name}@gmail.com`).waitFor({ timeout: 3000 });
    await q.getByRole('button', { name: 'Create account' }).click();
    await q.getByRole('heading', { name: 'Check your inbox' }).waitFor();
    assert.match(await q.locator('.lead').innerText(), new RegExp(`${name}@\\s*gmail\\.con`));
  });
});

describe('keyboard and layout', () => {
  test('sign-up works with the keyboard alone', async () => {
    const p = await page();
    await p.goto(server.url + '/');
    assert.equal(await p.evaluate(() => document.activeElement.tagName), 'H1', 'focus starts at the heading');
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'email');
    await p.keyboard.type(uniqueEmail('keys'));
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'password');
    await p.keyboard.type('correct horse battery');
    await p.keyboard.press('Tab');
    await p.keyboard.press('Space'); // show password
    assert.equal(await p.getByLabel('Password', { exact: true }).getAttribute('type'), 'text');
    await p.keyboard.press('Tab');
    await p.keyboard.press('Enter');
    await p.getByRole('heading', { name: 'Check your inbox' }).waitFor();
    assert.equal(await p.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the new screen');
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'code', 'the code field comes first');
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'verify-code');
    await p.keyboard.press('Tab');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'resend');
  });

  for (const width of [360, 1280]) {
    test(`nothing overflows at ${width} px`, async () => {
      const p = await page({ viewport: { width, height: 800 } });
      await signUp(p, server, uniqueEmail('a-rather-long-address-to-wrap'));
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `scrolls sideways by ${overflow}px`);
    });
  }
});

describe('expiry', () => {
  let short;
  before(async () => {
    short = await startServer({ TOKEN_TTL: '2s', RESEND_COOLDOWN: '1s' });
  });
  after(async () => short?.stop());

  test('an expired link offers a new email', async () => {
    const email = uniqueEmail('expired');
    const { p, link } = await openExpiredLink(short, page, email);
    await p.getByLabel('Your email').fill(email);
    await p.getByRole('button', { name: 'Send me a new link' }).click();
    await p.getByText('a new link is on its way').waitFor();
    const fresh = await latestLink(short, email, { after: link });
    assert.notEqual(fresh, link);
  });
});

describe('connection loss', () => {
  let own;
  before(async () => {
    own = await startServer();
  });
  after(async () => own?.stop());

  test('shows reconnecting while the server is away and recovers', async () => {
    const email = uniqueEmail('reconnect');
    const p = await openPage(chromium.browser); // its console will show the dropped socket
    try {
      await signUp(p, own, email);
      await p.getByText('Live', { exact: true }).waitFor();
      await own.halt();
      await p.getByText('Reconnecting…', { exact: true }).waitFor();
      await own.resume();
      await p.getByText('Live', { exact: true }).waitFor({ timeout: 30000 });
      await apiVerify(own, await latestLink(own, email));
      await p.getByText('Your email is verified.').waitFor({ timeout: 2000 });
    } finally {
      await p.context().close();
    }
  });
});
