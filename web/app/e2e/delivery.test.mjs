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

/** An SMTP server on loopback: 550 for refused-*, 451 for later-*. */
function startSink() {
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onRcptTo(address, _session, callback) {
      const reply = (code, text) => Object.assign(new Error(text), { responseCode: code });
      if (address.address.startsWith('refused-')) return callback(reply(550, '5.1.1 no such user here'));
      if (address.address.startsWith('later-')) return callback(reply(451, '4.2.0 mailbox busy, try later'));
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
