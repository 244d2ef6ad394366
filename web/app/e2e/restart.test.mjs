// A restart never ends a watch: the real graphql-ws client, with its
// default options (retries on), against the real server binary. On
// SIGTERM the server closes websockets with 1012 "service restart" before
// any subscription ends, so the client reconnects and subscribes again by
// itself, and then sees VERIFIED. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient } from 'graphql-ws';
// Node 20 has no WebSocket of its own.
import WebSocket from 'ws';
import { apiRegister, apiVerify, latestLink, startServer, uniqueEmail } from './helpers.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

/** A queue of values that can be awaited one at a time. */
function channel() {
  const values = [];
  const waiters = [];
  return {
    push(v) {
      const w = waiters.shift();
      if (w) w(v);
      else values.push(v);
    },
    next() {
      if (values.length) return Promise.resolve(values.shift());
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}

test('graphql-ws re-subscribes after a restart and then receives VERIFIED', { timeout: 60_000 }, async () => {
  const email = uniqueEmail('restart');
  const watch = await apiRegister(server, email);
  const link = await latestLink(server, email);

  const connections = channel();
  const closes = [];
  const client = createClient({
    url: server.url.replace(/^http/, 'ws') + '/query',
    webSocketImpl: WebSocket,
    on: {
      connected: () => connections.push('connected'),
      closed: (e) => closes.push(e.code),
    },
  });
  const events = channel();
  const ended = new Promise((resolve, reject) => {
    client.subscribe(
      {
        query: 'subscription($w: String!) { verificationStatus(watchToken: $w) { status at } }',
        variables: { w: watch },
      },
      {
        next: (r) => events.push(r),
        error: (e) => reject(new Error(`subscription failed: ${e?.code ?? e?.message ?? e}`)),
        complete: resolve,
      },
    );
  });
  // A subscription completed by the restart never sees VERIFIED.
  const endedEarly = ended.then(() => {
    throw new Error('the restart completed the subscription');
  });

  try {
    await connections.next();
    assert.equal((await events.next()).data.verificationStatus.status, 'UNVERIFIED');

    await server.halt(); // SIGTERM; exits 0
    await server.resume(); // the same port and database
    await Promise.race([connections.next(), endedEarly]);
    assert.deepEqual(closes, [1012], 'closed once, with "service restart"');
    // Subscribed again by itself: the current status at once.
    const again = await Promise.race([events.next(), endedEarly]);
    assert.equal(again.data.verificationStatus.status, 'UNVERIFIED');

    await apiVerify(server, link);
    assert.equal((await events.next()).data.verificationStatus.status, 'VERIFIED');
    await ended;
  } finally {
    await client.dispose();
  }
});
