// The waiting screen tells what became of the email: the real server sends
// through a real SMTP server (smtp-server) that refuses one address for
// good, defers another, and accepts the rest. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { browserPages, signUp, startServer, uniqueEmail } from './helpers.mjs';

const { page } = browserPages();
let server, sink;
const received = [];
// held-* recipients: the sink keeps its answer (a 550) until the test
// calls the function kept here, so a test can act before the refusal.
const held = new Map();

/** An SMTP server on loopback: 550 for refused-*, 451 for later-*, a
 * 550 held back for held-*. */
function startSink() {
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onRcptTo(address, _session, callback) {
      const reply = (code, text) => Object.assign(new Error(text), { responseCode: code });
      if (address.address.startsWith('refused-')) return callback(reply(550, '5.1.1 no such user here'));
      if (address.address.startsWith('later-')) return callback(reply(451, '4.2.0 mailbox busy, try later'));
      if (address.address.startsWith('held-')) {
        held.set(address.address, () => callback(reply(550, '5.1.1 no such user here')));
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      stream.on('data', () => {});
      stream.on('end', () => {
        received.push(...session.envelope.rcptTo.map((r) => r.address));
        callback();
      });
    },
  });
  return new Promise((ok, fail) => {
    smtp.once('error', fail);
    smtp.listen(0, '127.0.0.1', () => ok(smtp));
  });
}

before(async () => {
  sink = await startSink();
  server = await startServer({ SMTP_URL: `smtp://127.0.0.1:${sink.server.address().port}` });
});
after(async () => {
  await server?.stop();
  await new Promise((r) => (sink ? sink.close(r) : r()));
});

describe('delivery on the waiting screen', () => {
  test('an address the mail server accepts shows "sent to your mail server"', async () => {
    const email = uniqueEmail('accepted');
    const p = await page();
    await signUp(p, server, email);
    const box = p.locator('#delivery');
    await box.getByText('Email sent to your mail server.').waitFor();
    assert.equal(await box.getAttribute('data-state'), 'SENT');
    assert.equal(await box.getAttribute('aria-live'), 'polite', 'read out without moving focus');
    const status = p.locator('#status');
    assert.equal(await status.getAttribute('role'), 'status', 'the waiting status is a live region too');
    assert.equal(await status.getAttribute('aria-live'), 'polite');
    assert.equal(await p.getByRole('status').filter({ hasText: 'Waiting for you to confirm' }).count(), 1);
    assert.ok(received.includes(email), 'the sink has it');
    assert.equal(await p.getByRole('button', { name: 'Fix the address' }).isVisible(), false);
  });

  test('a refused address shows "refused: check the address" and starts over with it', async () => {
    const email = uniqueEmail('refused');
    const p = await page({ viewport: { width: 360, height: 740 } });
    await signUp(p, server, email);
    const box = p.locator('#delivery');
    await box.getByText('Email refused: check the address.').waitFor();
    assert.equal(await box.getAttribute('data-state'), 'FAILED');
    assert.match(await box.textContent(), /550/, "the server's reply, in plain words");
    assert.ok(!received.includes(email));

    await p.getByRole('button', { name: 'Fix the address' }).click();
    await p.getByRole('heading', { name: 'Create your account' }).waitFor();
    assert.equal(await p.getByLabel('Email', { exact: true }).inputValue(), email, 'the address to fix, prefilled');
  });

  test('a refusal that arrives while the code field has the focus moves it to "Fix the address"', async () => {
    const email = uniqueEmail('held');
    const p = await page();
    await signUp(p, server, email);
    for (let i = 0; !held.has(email); i++) {
      assert.ok(i < 200, 'the mail server was asked');
      await new Promise((r) => setTimeout(r, 50));
    }
    await p.locator('#code').focus();
    await p.keyboard.type('12');
    held.get(email)();
    await p.locator('#delivery[data-state="FAILED"]').waitFor();
    assert.equal(await p.locator('#code').isVisible(), false, 'the code field is gone');
    // Focus settles after the next layout; read it after one frame.
    await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r))));
    assert.equal(await p.evaluate(() => document.activeElement.id || document.activeElement.tagName), 'fix-address');
    await p.keyboard.press('Enter');
    await p.getByRole('heading', { name: 'Create your account' }).waitFor();
    assert.equal(await p.getByLabel('Email', { exact: true }).inputValue(), email);
  });

  test('a mail server that says "later" shows "delayed, retrying"', async () => {
    const email = uniqueEmail('later');
    const p = await page({ colorScheme: 'dark' });
    await signUp(p, server, email);
    const box = p.locator('#delivery');
    await box.getByText(/Email delayed, retrying/).waitFor();
    assert.equal(await box.getAttribute('data-state'), 'DEFERRED');
    assert.match(await box.textContent(), /451/);
  });
});
