// The sign-up's address field: what it says at once, before anything is
// sent, and its "Did you mean …?", which never moves Create account from
// under the pointer. A file of its own: on a busy machine app.test.mjs
// comes close to the per-file timeout. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertStill, browserPages, mousePress, startServer } from './helpers.mjs';

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

  // At 360 px the hint takes two lines, more than the place of the field's
  // empty error line that it takes at 1280: the page scrolls by the line
  // more, and the button stays where it was on the screen.
  for (const width of [1280, 360]) {
    test(`the "Did you mean" hint never moves Create account from under the pointer (${width} px)`, async () => {
      const p = await page({ viewport: { width, height: 800 } });
      let registers = 0;
      p.on('request', (r) => {
        if (r.url().endsWith('/query') && /register\(/.test(r.postData() ?? '')) registers++;
      });
      const name = `ann${Date.now() % 100000}`;
      await p.goto(server.url + '/');
      await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
      // Edited last: the press on the button is what leaves the field.
      const field = p.getByLabel('Email', { exact: true });
      await field.fill(`${name}@gmail.con`);
      const create = p.getByRole('button', { name: 'Create account' });
      const top = (await create.boundingBox()).y;
      const moved = await mousePress(p, create);
      assert.equal(moved, 0, `Create account moved ${moved} px down under the pointer as the press left the field`);
      await p.locator('#email-suggestion').getByText(`${name}@gmail.com`).waitFor({ timeout: 3000 });
      assert.equal(await p.evaluate(() => document.activeElement.id), 'email', 'the press reached Create account, which went back to the address');
      assert.equal(registers, 0, 'nothing sent yet');
      await assertStill(create, top, 'Create account, when the hint showed');
      const shown = (await create.boundingBox()).y;

      // The typo fixed by hand, and a press at once where the button was.
      await field.press('End');
      await field.press('Backspace');
      await field.press('m');
      assert.equal(await p.locator('#email-suggestion').textContent(), '', 'the hint went with the typo');
      const fixed = (await create.boundingBox()).y;
      assert.equal(fixed - shown, 0, `Create account moved ${fixed - shown} px as the address was edited`);
      await p.mouse.down();
      await p.mouse.up();
      await p.getByRole('heading', { name: 'Check your inbox' }).waitFor({ timeout: 3000 });
      assert.equal(registers, 1);
      assert.match(await p.locator('.lead').innerText(), new RegExp(`${name}@\\s*gmail\\.com`));
    });

    // A long address makes the hint three lines at 1280 and four at 360.
    // The second press, at once where the first was, keeps the address as
    // typed (such a domain may be real), and only lands if the button
    // stayed under the pointer.
    test(`a "Did you mean" hint of several lines leaves Create account under the pointer for a second press (${width} px)`, async () => {
      const p = await page({ viewport: { width, height: 800 } });
      let registers = 0;
      p.on('request', (r) => {
        if (r.url().endsWith('/query') && /register\(/.test(r.postData() ?? '')) registers++;
      });
      const address = `ann.with.a.rather.long.name.${Date.now() % 100000}@gmial.com`;
      await p.goto(server.url + '/');
      await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
      await p.getByLabel('Email', { exact: true }).fill(address);
      const create = p.getByRole('button', { name: 'Create account' });
      const top = (await create.boundingBox()).y;
      assert.equal(await mousePress(p, create), 0, 'Create account moved under the pointer as the press left the field');
      const hint = p.locator('#email-suggestion');
      await hint.getByText(address.replace('gmial', 'gmail')).waitFor({ timeout: 3000 });
      const lines = Math.round((await hint.boundingBox()).height / 22);
      assert.ok(lines >= 2, `the hint takes ${lines} lines`);
      await assertStill(create, top, `Create account, when a hint of ${lines} lines showed`);
      assert.equal(registers, 0, 'nothing sent yet');
      await p.mouse.down();
      await p.mouse.up();
      await p.getByRole('heading', { name: 'Check your inbox' }).waitFor({ timeout: 3000 });
      assert.equal(registers, 1);
      assert.match(await p.locator('.lead').innerText(), /@\s*gmial\.com/);
    });
  }

  // The field's error line keeps one line of room; at 360 px this error
  // takes two, and then three as the address is made longer.
  test('an error of several lines under the address leaves Create account under the pointer (360 px)', async () => {
    const p = await page({ viewport: { width: 360, height: 800 } });
    await p.goto(server.url + '/');
    await p.getByLabel('Password', { exact: true }).fill('correct horse battery');
    const field = p.getByLabel('Email', { exact: true });
    await field.fill('a'.repeat(65) + '@example.com');
    const create = p.getByRole('button', { name: 'Create account' });
    const error = p.locator('#email-error');
    const top = (await create.boundingBox()).y;
    assert.equal(await mousePress(p, create), 0, 'Create account moved under the pointer as the press left the field');
    await error.getByText('The part before the @ can be at most 64 characters.').waitFor({ timeout: 3000 });
    assert.ok((await error.boundingBox()).height > 30, 'the error takes two lines');
    await assertStill(create, top, 'Create account, when the error showed');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'email', 'back to the address');

    // A longer error, and the address put right: each after a press.
    await field.fill('é'.repeat(33) + '@example.com');
    const again = (await create.boundingBox()).y;
    await mousePress(p, create);
    await error.getByText(/letters like é count/).waitFor({ timeout: 3000 });
    await assertStill(create, again, 'Create account, pressed with an error shown');
    await field.fill('');
    await field.fill(`ok-${Date.now()}@example.com`);
    assert.equal(await error.textContent(), '');
    await create.click();
    await p.getByRole('heading', { name: 'Check your inbox' }).waitFor({ timeout: 3000 });
  });
});
