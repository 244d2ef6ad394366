// The offline playground: GraphiQL at /playground loads, introspects the
// schema, runs the preloaded Register example, and no request leaves the
// service's origin (every asset, worker and font is served by the binary);
// what a person types or gets back there (passwords, tokens, headers) is
// kept by none of the origin's storage.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { browserPages, devMail, startServer } from './helpers.mjs';

const chromium = browserPages();
let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test('the playground works offline and every request stays on the origin', async () => {
  const origin = new URL(server.url);
  const p = await chromium.page();
  const requests = [];
  p.on('request', (r) => requests.push(r.url()));
  // Workers' requests too (the editor's language services).
  p.context().on('request', (r) => requests.push(r.url()));
  p.on('websocket', (ws) => requests.push(ws.url()));

  const res = await p.goto(`${server.url}/playground`);
  assert.equal(res.status(), 200);
  const csp = res.headers()['content-security-policy'];
  assert.match(csp, /default-src 'self'/);
  assert.doesNotMatch(csp, /https?:|\*/, 'no source besides the origin');

  // The first example tab is Register; run it once its editors hold the
  // example. The execute button is drawn before Monaco has mounted the
  // editors, and a click then does nothing (a cold CI run caught it).
  await p.locator('.graphiql-query-editor').getByText('mutation Register').waitFor();
  await p.locator('.graphiql-editor-tool').getByText('ada@example.com').waitFor();
  await p.getByRole('button', { name: /execute/i }).click();
  // Whatever comes back is shown whole if it is not the registration.
  const response = p.locator('.graphiql-response');
  await response.getByText(/"(data|errors)"/).first().waitFor();
  const shown = await response.innerText();
  assert.match(shown, /watchToken/, `the playground showed: ${shown}`);
  assert.match(shown, /UNVERIFIED/, `the playground showed: ${shown}`);
  const mail = await devMail(server);
  assert.ok(mail.some((m) => m.to === 'ada@example.com'), 'the example registered for real');

  // The example tabs are preloaded.
  for (const name of ['VerificationStatus', 'VerifyEmail', 'VerifyEmailWithCode', 'SignIn']) {
    await p.getByRole('button', { name, exact: true }).waitFor();
  }

  const network = requests.filter((u) => /^(https?|wss?):/.test(u));
  assert.ok(network.some((u) => u.endsWith('/query')), 'GraphQL requests were made');
  for (const u of network) {
    assert.equal(new URL(u).host, origin.host, `a request left the origin: ${u}`);
  }
  const offsite = requests.filter((u) => !/^(https?|wss?|data|blob):/.test(u));
  assert.deepEqual(offsite, [], 'no other kind of request');
});

/** Every localStorage and sessionStorage entry of the page's origin, as text. */
function storedEntries(p) {
  return p.evaluate(() => {
    const all = {};
    for (const [name, s] of [['localStorage', localStorage], ['sessionStorage', sessionStorage]]) {
      for (let i = 0; i < s.length; i++) all[`${name} ${s.key(i)}`] = s.getItem(s.key(i));
    }
    return all;
  });
}

/** Replaces the text of the playground's `variables` or `headers` editor
 * (deleted first, else Monaco wraps the selection in the first bracket,
 * and inserted, so that it closes no bracket or quote itself). */
async function typeInto(p, editor, text) {
  await p.locator(`.graphiql-editor-tool .monaco-editor[data-uri$="-${editor}.json"]`).click();
  await p.keyboard.press('ControlOrMeta+A');
  await p.keyboard.press('Delete');
  await p.keyboard.insertText(text);
}

test('the playground keeps no password, token or header in the origin\'s storage', async () => {
  const p = await chromium.page();
  // An earlier build left GraphiQL's state in localStorage; the web app
  // has keys of its own there, which stay.
  // (Written from a stand-in page of the origin: a real one would run
  // the playground, or ask for a favicon the service does not have.)
  await p.route(`${server.url}/seed`, (r) =>
    r.fulfill({ contentType: 'text/html', body: '<!doctype html><link rel="icon" href="data:,">' }));
  await p.goto(`${server.url}/seed`);
  await p.evaluate(() => {
    localStorage.setItem('graphiql:queries', '{"queries":[{"variables":"{\\"password\\":\\"stale-secret\\"}"}]}');
    localStorage.setItem('not-graphiql', 'kept');
  });

  await p.goto(`${server.url}/playground`);
  const query = p.locator('.graphiql-query-editor');
  const tools = p.locator('.graphiql-editor-tool');
  await query.getByText('mutation Register').waitFor();
  await tools.getByText('ada@example.com').waitFor();

  const password = `playground-password-${Date.now()}`;
  const bearer = `playground-bearer-${Date.now()}`;
  await typeInto(p, 'variables', JSON.stringify({ input: { email: 'grace@example.com', password } }));
  await tools.getByText('grace@example.com').waitFor();
  await p.getByRole('button', { name: /headers/i }).click();
  await typeInto(p, 'headers', JSON.stringify({ Authorization: `Bearer ${bearer}` }));
  await tools.getByText(bearer).waitFor();
  await p.getByRole('button', { name: /execute/i }).click();
  const response = p.locator('.graphiql-response');
  await response.getByText(/"(data|errors)"/).first().waitFor();
  const shown = await response.innerText();
  const watchToken = /"watchToken":\s*"([^"]+)"/.exec(shown)?.[1];
  assert.ok(watchToken, `the playground showed: ${shown}`);
  const mail = await devMail(server);
  assert.ok(mail.some((m) => m.to === 'grace@example.com'), 'the typed variables were sent');

  const secrets = [password, bearer, watchToken, 'stale-secret'];
  const noSecrets = async (when) => {
    const stored = await storedEntries(p);
    for (const [key, value] of Object.entries(stored)) {
      for (const secret of secrets) {
        assert.ok(!value.includes(secret), `${when}: ${key} holds ${secret}: ${value}`);
      }
    }
    assert.equal(stored['localStorage not-graphiql'], 'kept', `${when}: the web app's own key stays`);
  };
  await noSecrets('after the run');

  // Nor does it offer to keep headers across reloads.
  await p.getByRole('button', { name: 'Open settings dialog' }).click();
  await p.getByText('Clear storage').waitFor();
  assert.equal(await p.getByText('Persist headers').count(), 0, 'no "Persist headers" setting');
  await p.keyboard.press('Escape');

  // A reload in the same tab starts again from the examples, which run.
  await p.reload();
  await query.getByText('mutation Register').waitFor();
  await tools.getByText('ada@example.com').waitFor();
  for (const name of ['VerificationStatus', 'VerifyEmail', 'VerifyEmailWithCode', 'SignIn']) {
    await p.getByRole('button', { name, exact: true }).waitFor();
  }
  await p.getByRole('button', { name: /execute/i }).click();
  await response.getByText(/watchToken/).waitFor();
  await noSecrets('after a reload');
});
