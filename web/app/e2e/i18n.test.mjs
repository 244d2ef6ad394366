// The app in the browser's language: a German browser gets German pages,
// and the emails of its registration are German too.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { browserPages, devMail, latestCode, latestLink, startServer, uniqueEmail } from './helpers.mjs';

const chromium = browserPages();
const { page } = chromium;
let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test('a German browser signs up in German and gets a German email', async () => {
  const email = uniqueEmail('de');
  const p = await page({ locale: 'de-DE' });
  await p.goto(server.url + '/');
  await p.getByRole('heading', { name: 'Erstelle dein Konto' }).waitFor();
  assert.equal(await p.evaluate(() => document.documentElement.lang), 'de');
  assert.equal(await p.title(), 'Registrieren · verifier');
  await p.getByLabel('E-Mail-Adresse', { exact: true }).fill('kein-at-zeichen');
  await p.getByLabel('Passwort', { exact: true }).fill('kurz');
  await p.getByRole('button', { name: 'Konto erstellen' }).click();
  await p.getByText('Gib eine E-Mail-Adresse wie name@example.com ein.').waitFor();
  await p.getByText('Verwende mindestens 8 Zeichen.').waitFor();

  await p.getByLabel('E-Mail-Adresse', { exact: true }).fill(email);
  await p.getByLabel('Passwort', { exact: true }).fill('correct horse battery');
  await p.getByRole('button', { name: 'Konto erstellen' }).click();
  await p.getByRole('heading', { name: 'Schau in dein Postfach' }).waitFor();
  await p.getByText('Live', { exact: true }).waitFor();

  const link = await latestLink(server, email);
  const mail = (await devMail(server)).find((m) => m.to === email);
  assert.equal(mail.subject, 'Bitte bestätige deine E-Mail-Adresse');
  assert.match(mail.text, /^Hallo,/);
  assert.match(mail.text, /Danke für deine Registrierung/);
  assert.match(mail.text, /Der Link gilt bis \S+, \d+\. \S+ \d{4}, \d\d:\d\d Uhr \(UTC\)/, 'a German date');
  assert.ok(mail.text.split('\n').includes(link), 'the link on a line of its own');

  // A wrong code answers in German; the right one flips the page.
  const code = await latestCode(server, email);
  const wrong = code.replace(/\d$/, (d) => String((Number(d) + 1) % 10));
  await p.getByLabel('Oder gib den 6-stelligen Code aus der E-Mail ein').fill(wrong);
  await p.locator('#code-error', { hasText: 'Dieser Code stimmt nicht – noch 4 Versuche.' }).waitFor();
  await p.getByLabel('Oder gib den 6-stelligen Code aus der E-Mail ein').fill(code);
  await p.getByRole('heading', { name: 'Alles erledigt' }).waitFor();
  await p.getByText('Deine E-Mail-Adresse ist bestätigt.').waitFor();
});

test('the confirm page speaks German and the switcher keeps its token', async () => {
  const email = uniqueEmail('switch');
  const p = await page({ locale: 'de-AT' });
  await p.goto(server.url + '/');
  await p.getByLabel('E-Mail-Adresse', { exact: true }).fill(email);
  await p.getByLabel('Passwort', { exact: true }).fill('correct horse battery');
  await p.getByRole('button', { name: 'Konto erstellen' }).click();
  await p.getByRole('heading', { name: 'Schau in dein Postfach' }).waitFor();

  const q = await page({ locale: 'de-AT' });
  await q.goto(await latestLink(server, email));
  await q.getByRole('heading', { name: 'Bestätige deine E-Mail-Adresse' }).waitFor();
  assert.equal(new URL(q.url()).search, '', 'the token leaves the address bar');
  // To English and back: the page reloads with its token, in the other language.
  await q.getByRole('button', { name: 'English' }).click();
  await q.getByRole('heading', { name: 'Confirm your email' }).waitFor();
  assert.equal(await q.evaluate(() => document.documentElement.lang), 'en');
  await q.getByRole('button', { name: 'Deutsch' }).click();
  await q.getByRole('button', { name: 'E-Mail-Adresse bestätigen' }).click();
  await q.getByRole('heading', { name: 'E-Mail-Adresse bestätigt' }).waitFor();
  await p.getByText('Deine E-Mail-Adresse ist bestätigt.').waitFor();
});

test('an English browser stays English, and a French one too', async () => {
  for (const locale of ['en-GB', 'fr-FR']) {
    const p = await page({ locale });
    await p.goto(server.url + '/');
    await p.getByRole('heading', { name: 'Create your account' }).waitFor();
    assert.equal(await p.evaluate(() => document.documentElement.lang), 'en');
    await p.getByRole('button', { name: 'Deutsch' }).waitFor();
  }
});
