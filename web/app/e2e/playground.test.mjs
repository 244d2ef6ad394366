// The offline playground: GraphiQL at /playground loads, introspects the
// schema, runs the preloaded Register example, and no request leaves the
// service's origin (every asset, worker and font is served by the binary).
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
