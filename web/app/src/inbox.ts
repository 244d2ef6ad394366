import { ApiError, resend, watchStatus, type Connection, type Delivery, type Status } from './api';
import { announce, h, show } from './dom';
import { describe } from './messages';

/**
 * "Check your inbox": follows the registration live and flips to verified
 * when the link is confirmed anywhere, this tab or another device.
 */
export function inboxPage(email: string, watchToken: string, opts: { onStartOver(prefill: string): void; onExpired(): void }): void {
  const statusText = h('p', { class: 'status-text' }, 'Waiting for you to confirm…');
  const badge = h('span', { class: 'badge', 'data-state': 'connecting' }, 'Connecting…');
  const statusBox = h('div', { class: 'status', 'data-status': 'UNVERIFIED', id: 'status' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), statusText);
  const resendNote = h('p', { class: 'note', role: 'status' });
  const resendButton = h('button', { type: 'button', class: 'secondary', id: 'resend' }, 'Resend email');
  const startOver = h('button', { type: 'button', class: 'link' }, 'Wrong address? Start over');
  const heading = h('h1', {}, 'Check your inbox');
  const lead = h('p', { class: 'lead' }, 'We sent a link to ', h('strong', { class: 'address' }, email),
    '. Open it on this or any other device and press “Confirm my email”. This page updates by itself.');
  const actions = h('div', { class: 'actions' }, resendButton, startOver);

  // What became of the email, as the mail server told us. Its own polite
  // live region: a change is read out without moving focus.
  const deliveryText = h('span', { class: 'delivery-text' });
  const deliveryDetail = h('span', { class: 'delivery-detail' });
  const fixAddress = h('button', { type: 'button', class: 'link', id: 'fix-address' }, 'Fix the address');
  fixAddress.hidden = true;
  const deliveryBox = h('div', { class: 'delivery', id: 'delivery', 'data-state': 'QUEUED', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' },
    h('span', { class: 'delivery-icon', 'aria-hidden': 'true' }),
    h('span', { class: 'delivery-body' }, deliveryText, deliveryDetail, fixAddress),
  );
  deliveryBox.hidden = true;
  let shownDelivery = '';
  const showDelivery = (d: Delivery) => {
    // The same state again (a reconnect sends the current one): nothing to
    // say, and nothing to read out twice.
    const key = `${d.state}/${d.attempts}`;
    if (key === shownDelivery || statusBox.dataset.status === 'VERIFIED') return;
    shownDelivery = key;
    deliveryBox.hidden = false;
    deliveryBox.dataset.state = d.state;
    const failed = d.state === 'FAILED';
    deliveryText.textContent = {
      QUEUED: 'Your email is on its way to your mail server…',
      SENT: 'Email sent to your mail server.',
      DEFERRED: 'Email delayed, retrying. Your mail server asked us to try again later.',
      FAILED: 'Email refused: check the address.',
    }[d.state];
    deliveryDetail.textContent = (d.state === 'DEFERRED' || failed) && d.reason ? `Details: ${d.reason}` : '';
    fixAddress.hidden = !failed;
    // A resend to a refused address would be refused too: fixing the
    // address is the one way on.
    actions.hidden = failed;
    if (failed) {
      statusBox.dataset.status = 'FAILED';
      statusText.textContent = 'We could not deliver the link.';
      lead.replaceChildren('Your mail server refused our email to ', h('strong', { class: 'address' }, email),
        '. Check the address for a typo and sign up again.');
    } else if (statusBox.dataset.status === 'FAILED') {
      // A resend went through after all.
      statusBox.dataset.status = 'UNVERIFIED';
      statusText.textContent = 'Waiting for you to confirm…';
    }
  };

  let countdown: number | undefined;
  const cooldown = (seconds: number) => {
    window.clearInterval(countdown);
    let left = Math.max(1, Math.ceil(seconds));
    const tick = () => {
      if (left <= 0) {
        window.clearInterval(countdown);
        resendButton.disabled = false;
        resendButton.textContent = 'Resend email';
        return;
      }
      resendButton.disabled = true;
      resendButton.textContent = `Resend in ${left} s`;
      left--;
    };
    tick();
    countdown = window.setInterval(tick, 1000);
  };

  resendButton.addEventListener('click', async () => {
    resendButton.disabled = true;
    resendNote.textContent = '';
    try {
      await resend(email);
      resendNote.textContent = 'We sent a new link. Any earlier link still works.';
      resendButton.disabled = false;
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(String(err), 'INTERNAL');
      if (e.code === 'RATE_LIMITED') {
        resendNote.textContent = 'An email was sent a moment ago. You can ask for another when the countdown ends.';
        cooldown(e.retryAfterSeconds ?? 60);
      } else {
        resendNote.textContent = describe(e);
        resendButton.disabled = false;
      }
    }
  });

  const watch = watchStatus(watchToken, {
    status: (s: Status) => {
      if (s !== 'VERIFIED' || statusBox.dataset.status === 'VERIFIED') return;
      statusBox.dataset.status = 'VERIFIED';
      statusText.textContent = 'Your email is verified.';
      heading.textContent = 'You are all set';
      lead.replaceChildren(h('strong', { class: 'address' }, email), ' is confirmed. You can continue in the app.');
      actions.remove();
      resendNote.remove();
      deliveryBox.remove();
      badge.remove();
      window.clearInterval(countdown);
      announce(`${email} is verified.`);
      watch.stop();
    },
    delivery: showDelivery,
    connection: (c: Connection) => {
      badge.dataset.state = c;
      badge.textContent = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' }[c];
      if (c === 'reconnecting') announce('Connection lost. Reconnecting…');
    },
    error: (e: ApiError) => {
      watch.stop();
      if (e.code === 'INVALID_TOKEN') opts.onExpired();
      else statusText.textContent = describe(e);
    },
  });

  const leave = () => {
    watch.stop();
    window.clearInterval(countdown);
    opts.onStartOver(email);
  };
  startOver.addEventListener('click', leave);
  fixAddress.addEventListener('click', leave);

  show(h('div', { class: 'title-row' }, heading, badge), lead, statusBox, deliveryBox, actions, resendNote);
}
