// The waiting screen after a long loss of network or server: it is live
// again within seconds of their return, however long they were away. The
// page's clock is moved on (playwright's clock) so that minutes of backoff
// take seconds. A file of its own: its minutes of page time would push
// app.test.mjs past the per-file timeout. Run with `npm run test:e2e`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apiVerify, browserPages, latestLink, openPage, signUp, startServer, uniqueEmail } from './helpers.mjs';

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

  test('after a long outage, live again within seconds of the server coming back, and sees a confirmation made meanwhile', async () => {
    const email = uniqueEmail('outage');
    const p = await longOutage(email);
    try {
      await own.resume();
      await apiVerify(own, await latestLink(own, email));
      // Page time moved a second at a time: the next attempt is due
      // within 8 s and the random 3 s, not minutes later.
      let waited = 0;
      while (waited < 12 && !['Live', 'VERIFIED'].includes(await badge(p))) {
        await p.clock.fastForward(1000);
        await p.waitForTimeout(200);
        waited++;
      }
      assert.ok(['Live', 'VERIFIED'].includes(await badge(p)), `still ${await badge(p)} ${waited} s of page time after the server came back`);
      await p.getByText('Your email is verified.').waitFor({ timeout: 2000 });
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
