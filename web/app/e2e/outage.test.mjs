// The waiting screen after a long loss of network or server: it is live
// again within seconds of their return, however long they were away, and
// what it said while they were gone goes once they are back. The
// page's clock is moved on (playwright's clock) so that minutes of backoff
// take seconds. A file of its own: its minutes of page time would push
// app.test.mjs past the per-file timeout. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apiVerify, browserPages, latestLink, liveSaid, openPage, recordLiveRegions, signUp, startServer, uniqueEmail,
} from './helpers.mjs';

const chromium = browserPages();

describe('a long outage', () => {
  let own;
  before(async () => {
    own = await startServer();
  });
  after(async () => own?.stop());

  /** Signs up on a page whose clock the test moves, then keeps the server
   * away for five minutes of page time, moved on 5 s at a time, and up to
   * the next attempt to reconnect after them, refused: the time to the
   * attempt after that is what the backoff has grown to. */
  async function longOutage(email) {
    const p = await openPage(chromium.browser); // its console will show the refused sockets
    let sockets = 0;
    p.on('websocket', () => sockets++);
    await p.clock.install();
    await signUp(p, own, email);
    await p.getByText('Live', { exact: true }).waitFor();
    await own.halt();
    await p.getByText('Reconnecting…', { exact: true }).waitFor();
    const step = async () => {
      await p.clock.fastForward(5000);
      await p.waitForTimeout(100);
    };
    for (let away = 0; away < 300_000; away += 5000) await step();
    const seen = sockets;
    while (sockets === seen) await step();
    await p.waitForTimeout(500); // refused
    return p;
  }
  // Live, or verified (the badge then goes).
  const badge = (p) => p.evaluate(() => document.querySelector('.badge')?.textContent ?? document.querySelector('#status')?.dataset.status);
  /** Moves page time on a second at a time, up to 12 s (the longest wait
   * between attempts is 8 s and the client's random 3 s), until the page
   * is in one of states; then gives an attempt made in that time up to
   * 5 s of real time to connect, the clock still: on a loaded machine a
   * socket may take longer than the steps leave it. Returns the badge
   * and the page seconds moved. */
  async function reconnected(p, states) {
    let waited = 0;
    while (waited < 12 && !states.includes(await badge(p))) {
      await p.clock.fastForward(1000);
      await p.waitForTimeout(200);
      waited++;
    }
    for (let i = 0; i < 25 && !states.includes(await badge(p)); i++) await p.waitForTimeout(200);
    return { state: await badge(p), waited };
  }

  test('after a long outage, live again within seconds of the server coming back, and sees a confirmation made meanwhile', async () => {
    const email = uniqueEmail('outage');
    const p = await longOutage(email);
    try {
      await own.resume();
      await apiVerify(own, await latestLink(own, email));
      // Page time moved a second at a time: the next attempt is due
      // within 8 s and the random 3 s, not minutes later.
      const { state, waited } = await reconnected(p, ['Live', 'VERIFIED']);
      assert.ok(['Live', 'VERIFIED'].includes(state), `still ${state} ${waited} s of page time after the server came back`);
      await p.getByText('Your email is verified.').waitFor({ timeout: 2000 });
    } finally {
      await p.context().close();
    }
  });

  test('a "could not reach the server" from a resend or a code sent while the server was away goes once it is live again', async () => {
    const email = uniqueEmail('unreachable');
    const p = await openPage(chromium.browser); // its console will show the refused requests
    try {
      await p.clock.install();
      await signUp(p, own, email);
      await p.getByText('Live', { exact: true }).waitFor();
      await own.halt();
      await p.getByText('Reconnecting…', { exact: true }).waitFor();
      const unreachable = 'We could not reach the server. Check your connection and try again.';
      await p.getByRole('button', { name: 'Resend email' }).click();
      await p.locator('.note', { hasText: unreachable }).waitFor();
      const code = p.getByLabel('Or type the 6-digit code from the email');
      await code.fill('123456');
      await p.locator('#code-error', { hasText: unreachable }).waitFor();
      await code.focus();
      await recordLiveRegions(p);

      await own.resume();
      const { state, waited } = await reconnected(p, ['Live']);
      assert.equal(state, 'Live', `still ${state} ${waited} s of page time after the server came back`);
      // Live, and no next action: the lines are gone by themselves.
      await p.waitForTimeout(300);
      assert.equal(await p.getByText('could not reach the server').count(), 0,
        `still on screen after Live: ${await p.locator('.note, #code-error').allInnerTexts()}`);
      assert.equal(await code.getAttribute('aria-invalid'), null, 'the code was never checked: not marked wrong');
      assert.equal(await p.evaluate(() => document.activeElement.id), 'code', 'the focus stays where it was');
      assert.ok((await liveSaid(p)).some((x) => x.text === 'Connected again.'), 'said to screen readers');
    } finally {
      await p.context().close();
    }
  });

  test('an outage is said to screen readers once, not at every attempt to reconnect, and its end once', async () => {
    const email = uniqueEmail('said-once');
    const p = await openPage(chromium.browser); // its console will show the refused sockets
    try {
      let sockets = 0;
      p.on('websocket', () => sockets++);
      await p.clock.install();
      await signUp(p, own, email);
      await p.getByText('Live', { exact: true }).waitFor();
      await recordLiveRegions(p);
      await own.halt();
      await p.getByText('Reconnecting…', { exact: true }).waitFor();
      // Three more attempts, refused.
      const seen = sockets;
      while (sockets < seen + 3) {
        await p.clock.fastForward(1000);
        await p.waitForTimeout(100);
      }
      await p.waitForTimeout(500);
      await own.resume();
      assert.equal((await reconnected(p, ['Live'])).state, 'Live');
      const said = (await liveSaid(p)).map((x) => x.text);
      assert.equal(said.filter((x) => x === 'Connection lost. Reconnecting…').length, 1, `said: ${JSON.stringify(said)}`);
      assert.equal(said.filter((x) => x === 'Connected again.').length, 1, `said: ${JSON.stringify(said)}`);
    } finally {
      await p.context().close();
    }
  });

  test('after a long time offline, live again at once when the network comes back', async () => {
    const email = uniqueEmail('offline');
    const p = await longOutage(email);
    try {
      await p.context().setOffline(true);
      await own.resume();
      await p.context().setOffline(false); // the browser's "online" event
      // No page time moved, and less real time than the shortest wait left
      // (8.3 s, less the moments since it began): the event ends it.
      await p.getByText('Live', { exact: true }).waitFor({ timeout: 3000 });
    } finally {
      await p.context().close();
    }
  });
});
