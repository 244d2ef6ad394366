// Real GraphQL clients against the real server, each with its usual
// set-up: urql with its defaults (queries over GET), Apollo Client with
// the persisted-query link and GraphQLWsLink, the graphql-sse client
// (distinct connections) and the graphql-ws client. Each registers,
// queries the status, subscribes, confirms the address with the mailed
// token and sees VERIFIED on its subscription. Run with the browser tests
// (`npm run test:e2e`); no browser is needed here.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { BatchHttpLink } from '@apollo/client/link/batch-http';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from '@urql/core';
import { createClient as createSSEClient } from 'graphql-sse';
import { createClient as createWSClient } from 'graphql-ws';
import WebSocket from 'ws';
import { latestLink, startServer, uniqueEmail } from './helpers.mjs';

const REGISTER = `mutation Register($input: RegisterInput!) { register(input: $input) { watchToken status } }`;
const STATUS = `query Status($w: String!) { verificationStatus(watchToken: $w) }`;
const WATCH = `subscription Watch($w: String!) { verificationStatus(watchToken: $w) { status at } }`;
const VERIFY = `mutation Verify($t: String!) { verifyEmail(token: $t) { status } }`;
const password = 'correct horse battery';

let server;
let endpoint;
let wsEndpoint;
before(async () => {
  server = await startServer();
  endpoint = `${server.url}/query`;
  wsEndpoint = endpoint.replace(/^http/, 'ws');
});
after(async () => {
  await server?.stop();
});

/** A fetch that records the method and body of every request. */
function recordingFetch() {
  const seen = [];
  const f = (input, init = {}) => {
    const method = init.method ?? (input instanceof Request ? input.method : 'GET');
    seen.push({ method, url: String(input instanceof Request ? input.url : input), body: init.body ? JSON.parse(init.body) : undefined });
    return fetch(input, init);
  };
  return { fetch: f, seen };
}

/** The token of the newest verification link mailed to email. */
async function mailedToken(email) {
  return new URL(await latestLink(server, email)).searchParams.get('token');
}

/**
 * Collects a subscription's statuses: `until(status)` resolves once it was
 * seen, `done` once the server completed the subscription. `error(e)`, the
 * client giving up, fails both at once instead of leaving the test to hang.
 */
function statuses() {
  const seen = [];
  const waiters = [];
  let completed;
  let failed;
  const done = new Promise((ok, fail) => {
    completed = ok;
    failed = fail;
  });
  done.catch(() => {});
  return {
    seen,
    done,
    next(status) {
      seen.push(status);
      for (const w of waiters.splice(0)) w.ok();
    },
    complete: () => completed(),
    error(e) {
      failed(e);
      for (const w of waiters.splice(0)) w.fail(e);
    },
    async until(status) {
      while (!seen.includes(status)) await new Promise((ok, fail) => waiters.push({ ok, fail }));
    },
  };
}

describe('real clients', () => {
  test('urql with its defaults: queries over GET, subscriptions over graphql-sse', async () => {
    const rec = recordingFetch();
    const sse = createSSEClient({ url: endpoint });
    const client = new Client({
      url: endpoint,
      fetch: rec.fetch,
      exchanges: [
        cacheExchange,
        fetchExchange,
        subscriptionExchange({
          forwardSubscription: (request) => ({
            subscribe: (sink) => ({ unsubscribe: sse.subscribe(request, sink) }),
          }),
        }),
      ],
    });
    const email = uniqueEmail('urql');
    const reg = await client.mutation(REGISTER, { input: { email, password } }).toPromise();
    assert.equal(reg.error, undefined);
    const w = reg.data.register.watchToken;
    const q = await client.query(STATUS, { w }, { requestPolicy: 'network-only' }).toPromise();
    assert.equal(q.error, undefined);
    assert.equal(q.data.verificationStatus, 'UNVERIFIED');
    assert.deepEqual(rec.seen.map((r) => r.method), ['POST', 'GET'], 'the mutation over POST, the query over GET');

    const s = statuses();
    const sub = client.subscription(WATCH, { w }).subscribe((r) => {
      assert.equal(r.error, undefined);
      s.next(r.data.verificationStatus.status);
    });
    await s.until('UNVERIFIED');
    const v = await client.mutation(VERIFY, { t: await mailedToken(email) }).toPromise();
    assert.equal(v.data.verifyEmail.status, 'VERIFIED');
    await s.until('VERIFIED');
    sub.unsubscribe();
    sse.dispose();
  });

  test('Apollo Client with automatic persisted queries (GET for hashed queries) and GraphQLWsLink', async () => {
    const rec = recordingFetch();
    const ws = createWSClient({ url: wsEndpoint, webSocketImpl: WebSocket });
    const sha256 = (q) => createHash('sha256').update(q).digest('hex');
    const http = new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(new HttpLink({ uri: endpoint, fetch: rec.fetch }));
    const link = ApolloLink.split(
      ({ query }) => {
        const def = getMainDefinition(query);
        return def.kind === 'OperationDefinition' && def.operation === 'subscription';
      },
      new GraphQLWsLink(ws),
      http,
    );
    const client = new ApolloClient({ link, cache: new InMemoryCache(), clientAwareness: { name: 'e2e', version: '1' } });
    const email = uniqueEmail('apollo');
    const reg = await client.mutate({ mutation: gql(REGISTER), variables: { input: { email, password } } });
    const w = reg.data.register.watchToken;
    for (let i = 0; i < 2; i++) {
      const q = await client.query({ query: gql(STATUS), variables: { w }, fetchPolicy: 'network-only' });
      assert.equal(q.data.verificationStatus, 'UNVERIFIED');
    }
    // The mutation: its hash, PersistedQueryNotFound, then hash and query.
    // The query: its hash over GET, PersistedQueryNotFound, hash and query
    // over POST; the next time its hash alone over GET is enough.
    const shape = rec.seen.map((r) => {
      const params = r.method === 'GET' ? Object.fromEntries(new URL(r.url).searchParams) : r.body;
      return `${r.method} ${params.query ? 'query+hash' : 'hash'}`;
    });
    assert.deepEqual(shape, ['POST hash', 'POST query+hash', 'GET hash', 'POST query+hash', 'GET hash']);

    const s = statuses();
    const sub = client.subscribe({ query: gql(WATCH), variables: { w } }).subscribe({
      next: (r) => s.next(r.data.verificationStatus.status),
      error: (e) => s.error(e),
      complete: s.complete,
    });
    await s.until('UNVERIFIED');
    const v = await client.mutate({ mutation: gql(VERIFY), variables: { t: await mailedToken(email) } });
    assert.equal(v.data.verifyEmail.status, 'VERIFIED');
    await s.until('VERIFIED');
    await s.done;
    sub.unsubscribe();
    await ws.dispose();
  });

  test('Apollo BatchHttpLink: operations batched in one request, answered item by item', async () => {
    const rec = recordingFetch();
    const client = new ApolloClient({ link: new BatchHttpLink({ uri: endpoint, fetch: rec.fetch, batchMax: 10 }), cache: new InMemoryCache() });
    const email = uniqueEmail('batch');
    const reg = await client.mutate({ mutation: gql(REGISTER), variables: { input: { email, password } } });
    const w = reg.data.register.watchToken;
    const [ok, bad] = await Promise.all([
      client.query({ query: gql(STATUS), variables: { w }, fetchPolicy: 'network-only' }),
      client.query({ query: gql(`query Other($w: String!) { verificationStatus(watchToken: $w) }`), variables: { w: 'not-a-token' }, fetchPolicy: 'network-only' }).catch((e) => e),
    ]);
    assert.equal(ok.data.verificationStatus, 'UNVERIFIED');
    assert.equal(bad.errors?.[0]?.extensions?.code ?? bad.error?.errors?.[0]?.extensions?.code, 'INVALID_TOKEN', 'each item has its own errors');
    assert.equal(rec.seen.length, 2, 'the two queries went in one request');
    assert.equal(rec.seen[1].body.length, 2);
  });

  // graphql-sse and graphql-ws share one client interface: iterate for
  // one result, subscribe with a sink.
  const protocolClients = [
    ['graphql-sse client (distinct connections)', () => createSSEClient({ url: endpoint })],
    ['graphql-ws client', () => createWSClient({ url: wsEndpoint, webSocketImpl: WebSocket })],
  ];
  for (const [name, connect] of protocolClients) {
    test(name, async () => {
      const client = connect();
      const run = async (query, variables) => {
        for await (const r of client.iterate({ query, variables })) return r;
      };
      const email = uniqueEmail('protocol');
      const reg = await run(REGISTER, { input: { email, password } });
      const w = reg.data.register.watchToken;
      assert.equal((await run(STATUS, { w })).data.verificationStatus, 'UNVERIFIED');

      const s = statuses();
      const unsubscribe = client.subscribe({ query: WATCH, variables: { w } }, {
        next: (r) => s.next(r.data.verificationStatus.status),
        error: (e) => s.error(e),
        complete: s.complete,
      });
      await s.until('UNVERIFIED');
      assert.equal((await run(VERIFY, { t: await mailedToken(email) })).data.verifyEmail.status, 'VERIFIED');
      await s.until('VERIFIED');
      await s.done;
      unsubscribe();
      await client.dispose();
    });
  }

  test('a graphql-sse subscription survives a restart of the server', async () => {
    const rec = recordingFetch();
    // Retries every 200 ms for up to 20 s: graphql-sse's default of five
    // attempts ran out while a loaded machine restarted the server, and
    // the client gave up for good (one run in six).
    const sse = createSSEClient({
      url: endpoint,
      fetchFn: rec.fetch,
      retryAttempts: 100,
      retry: () => new Promise((ok) => setTimeout(ok, 200)),
    });
    const email = uniqueEmail('sse-restart');
    const reg = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: REGISTER, variables: { input: { email, password } } }),
    }).then((r) => r.json());
    const w = reg.data.register.watchToken;
    const s = statuses();
    const unsubscribe = sse.subscribe({ query: WATCH, variables: { w } }, {
      next: (r) => s.next(r.data.verificationStatus.status),
      error: (e) => s.error(e),
      complete: s.complete,
    });
    await s.until('UNVERIFIED');
    // Stop ends the stream without "complete": the client reconnects.
    await server.halt();
    await server.resume();
    const token = await mailedToken(email);
    const v = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: VERIFY, variables: { t: token } }),
    }).then((r) => r.json());
    assert.equal(v.data.verifyEmail.status, 'VERIFIED');
    await s.until('VERIFIED');
    await s.done;
    assert.ok(rec.seen.length >= 2, 'subscribed again after the restart');
    unsubscribe();
    sse.dispose();
  });
});
