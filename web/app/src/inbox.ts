import { ApiError, verifyEmailWithCode, watchStatus, type Connection, type Delivery, type Status } from './api';
import { codeForm } from './code';
import { announce, h, show } from './dom';
import { describe } from './messages';
import { onward } from './onward';
import { resendControl } from './resend';

/**
 * "Check your inbox": follows the registration live and flips to verified
 * when the link is confirmed anywhere, this tab or another device, or when
 * the code from the email is typed here.
 */
export function inboxPage(email: string, watchToken: string, opts: { onStartOver(prefill: string): void; onExpired(): void }): void {
  const statusText = h('p', { class: 'status-text' }, 'Waiting for you to confirm…');
  const badge = h('span', { class: 'badge', 'data-state': 'connecting' }, 'Connecting…');
  const statusBox = h('div', { class: 'status', 'data-status': 'UNVERIFIED', id: 'status' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), statusText);
  const resender = resendControl({
    label: 'Resend email', again: 'Resend', sent: 'We sent a new link. Any earlier link still works.', email: () => email,
  });
  const { button: resendButton, note: resendNote } = resender;
  const startOver = h('button', { type: 'button', class: 'link' }, 'Wrong address? Start over');
  const heading = h('h1', {}, 'Check your inbox');
  const lead = h('p', { class: 'lead' }, 'We sent a link and a code to ', h('strong', { class: 'address' }, email),
    '. Open the link on this or any other device and press “Confirm my email”, or type the code here. This page updates by itself.');
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
    code.hidden = failed;
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

  let verified = false;
  const onVerified = (receipt?: string | null, redirectTo?: string | null) => {
    if (verified) return;
    verified = true;
    watch.stop();
    resender.stop();
    statusBox.dataset.status = 'VERIFIED';
    statusText.textContent = 'Your email is verified.';
    heading.textContent = 'You are all set';
    lead.replaceChildren(h('strong', { class: 'address' }, email),
      receipt && redirectTo ? ' is confirmed. Continue where you left off.' : ' is confirmed. You can sign in now.');
    // A new screen, so focus starts at its heading again (the code field
    // that may have held it is gone).
    show(heading, lead, statusBox, onward(receipt, redirectTo));
    announce(`${email} is verified.`);
  };

  const code = codeForm({
    label: 'Or type the 6-digit code from the email',
    submit: async (c) => {
      const v = await verifyEmailWithCode(watchToken, c);
      onVerified(v.receipt, v.redirectTo);
    },
    dead: 'Use the link in the email, or send a new email.',
    other: (e) => {
      // A newer sign-up for the address replaced this one.
      if (e.code !== 'INVALID_TOKEN') return false;
      leave(opts.onExpired);
      return true;
    },
    onDead: () => resendButton.focus(),
  });

  const watch = watchStatus(watchToken, {
    status: (s: Status, receipt, redirectTo) => {
      if (s === 'VERIFIED') onVerified(receipt, redirectTo);
    },
    delivery: showDelivery,
    connection: (c: Connection) => {
      badge.dataset.state = c;
      badge.textContent = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' }[c];
      if (c === 'reconnecting') announce('Connection lost. Reconnecting…');
    },
    error: (e: ApiError) => {
      if (e.code === 'INVALID_TOKEN') leave(opts.onExpired);
      else {
        watch.stop();
        statusText.textContent = describe(e);
      }
    },
  });

  function leave(to: () => void) {
    watch.stop();
    resender.stop();
    to();
  }
  const startAgain = () => leave(() => opts.onStartOver(email));
  startOver.addEventListener('click', startAgain);
  fixAddress.addEventListener('click', startAgain);

  show(h('div', { class: 'title-row' }, heading, badge), lead, statusBox, deliveryBox, code, actions, resendNote);
}
