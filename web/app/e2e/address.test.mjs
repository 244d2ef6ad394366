// The sign-up's address field: what it says at once, before anything is
// sent. A file of its own: on a busy machine app.test.mjs comes close to
// the per-file timeout. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { browserPages, startServer } from './helpers.mjs';

// Every page of a test ends without console errors or uncaught exceptions.
const { page } = browserPages();
let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

describe('the address field', () => {
  test('a part before the @ over 64 bytes says so at once, in the field, as the server would refuse it', async () => {
    const p = await page();
    let sent = 0;
    p.on('request', (r) => { if (r.url().endsWith('/query') && (r.postData() ?? '').includes('register')) sent++; });
    await p.goto(server.url + '/');
    const field = p.getByLabel('Email', { exact: true });
    const error = p.locator('#email-error');
    await field.fill('a'.repeat(65) + '@example.com');
    await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await p.getByRole('button', { name: 'Create account' }).click();
    await p.waitForTimeout(300);
    assert.equal(await error.textContent(), 'The part before the @ can be at most 64 characters.');
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'email', 'back to the address');
    // 33 letters, 66 bytes: the server counts bytes.
    await field.fill('é'.repeat(33) + '@example.com');
    assert.equal(await error.textContent(), 'The part before the @ can be at most 64 characters, and letters like é count as 2 or more.');
    // Upper case counts lower-cased, as the server stores it: 64 bytes.
    await field.fill('İ'.repeat(32) + '@example.com');
    assert.equal(await error.textContent(), '');
    assert.equal(sent, 0, 'nothing sent');

    // 64 bytes pass the app, and the server takes them.
    const local = `edge-${Date.now()}-`.padEnd(64, 'x');
    await field.fill(`${local}@example.com`);
    assert.equal(await error.textContent(), '');
    await p.getByRole('button', { name: 'Create account' }).click();
    await p.getByRole('heading', { name: 'Check your inbox' }).waitFor();

    const q = await page({ locale: 'de-DE' });
    await q.goto(server.url + '/');
    await q.getByLabel('E-Mail-Adresse', { exact: true }).fill('a'.repeat(65) + '@example.com');
    await q.getByRole('button', { name: 'Konto erstellen' }).click();
    await q.locator('#email-error', { hasText: 'Der Teil vor dem @ darf höchstens 64 Zeichen lang sein.' }).waitFor({ timeout: 3000 });
  });
});
