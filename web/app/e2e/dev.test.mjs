// `npm run dev` as the README has it: Vite's dev server, the app served
// from source, in front of a verifier on a port of its own (VERIFIER_URL).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { apiVerify, browserPages, freePort, latestLink, signUp, startServer, uniqueEmail } from './helpers.mjs';

const chromium = browserPages();
let server;
let vite;
let viteURL;
let viteOutput = '';

before(async () => {
  server = await startServer();
  const port = await freePort();
  viteURL = `http://localhost:${port}`;
  vite = spawn(process.execPath, ['node_modules/vite/bin/vite.js', '--port', String(port), '--strictPort'], {
    cwd: resolve(import.meta.dirname, '..'),
    env: { ...process.env, VERIFIER_URL: server.url, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = (chunk) => (viteOutput += chunk);
  vite.stdout.on('data', output);
  vite.stderr.on('data', output);
  for (let i = 0; !viteOutput.includes('ready in'); i++) {
    assert.equal(vite.exitCode, null, `vite exited:\n${viteOutput}`);
    assert.ok(i < 600, `vite did not start:\n${viteOutput}`);
    await new Promise((r) => setTimeout(r, 50));
  }
});
after(async () => {
  if (vite && vite.exitCode === null) {
    const exited = new Promise((r) => vite.once('exit', r));
    vite.kill('SIGTERM');
    await exited;
  }
  await server?.stop();
});

test('npm run dev serves the app and proxies /query, its websocket included, to VERIFIER_URL', async () => {
  const email = uniqueEmail('dev');
  const a = await chromium.page();
  await signUp(a, { url: viteURL }, email);
  await a.getByText('Live', { exact: true }).waitFor();
  await apiVerify(server, await latestLink(server, email));
  await a.getByText('Your email is verified.').waitFor({ timeout: 5000 });
  assert.equal(vite.exitCode, null, `vite still runs:\n${viteOutput}`);
  assert.doesNotMatch(viteOutput, /error/i, 'vite reported no error');
});
