import { ApiError, verifyEmailWithCode, watchStatus, type Connection, type Delivery, type Status } from './api';
import { codeForm } from './code';
import { announce, emailAddress, h, keepFocus, show } from './dom';
import { describe } from './messages';
import { onward } from './onward';
import { resendControl } from './resend';
import { t } from './i18n';

/**
 * "Check your inbox": follows the registration live and flips to verified
 * when the link is confirmed anywhere, this tab or another device, or when
 * the code from the email is typed here.
 */
export function inboxPage(email: string, watchToken: string, opts: { onStartOver(prefill: string): void; onExpired(): void }): void {
  const statusText = h('p', { class: 'status-text' }, t.waiting);
  const badge = h('span', { class: 'badge', 'data-state': 'connecting' }, t.connection.connecting);
  // A polite live region, like the delivery below: "not delivered" or a
  // lost watch is read out without moving focus.
  const statusBox = h('div', { class: 'status', 'data-status': 'UNVERIFIED', id: 'status', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), statusText);
  const resender = resendControl({
    label: t.resendEmail, again: t.resend, sent: t.resentLink, email: () => email,
    // A dead code may only have expired, and then the new email has a new
    // code: the field takes it again.
    onSent: () => reviveCode(),
  });
  const { button: resendButton, note: resendNote } = resender;
  const startOver = h('button', { type: 'button', class: 'link' }, t.startOver);
  const heading = h('h1', {}, t.checkInbox);
  const titleRow = h('div', { class: 'title-row' }, heading, badge);
  const lead = h('p', { class: 'lead' }, ...t.inboxLead(emailAddress(email)));
  const actions = h('div', { class: 'actions' }, resendButton, startOver);

  // What became of the email, as the mail server told us. Its own polite
  // live region: a change is read out without moving focus.
  const deliveryText = h('span', { class: 'delivery-text' });
  const deliveryDetail = h('span', { class: 'delivery-detail' });
  const fixAddress = h('button', { type: 'button', class: 'link', id: 'fix-address' }, t.fixAddress);
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
    deliveryText.textContent = t.delivery[d.state];
    deliveryDetail.textContent = (d.state === 'DEFERRED' || failed) && d.reason ? t.details(d.reason) : '';
    // A resend to a refused address would be refused too: fixing the
    // address is the one way on, and where the focus goes if it was in
    // the code field or on a button that this hides.
    keepFocus(() => {
      fixAddress.hidden = !failed;
      actions.hidden = failed;
      code.hidden = failed;
    }, () => (failed ? fixAddress : code.querySelector('input')));
    if (failed) {
      statusBox.dataset.status = 'FAILED';
      statusText.textContent = t.notDelivered;
      lead.replaceChildren(...t.refusedLead(emailAddress(email)));
    } else if (statusBox.dataset.status === 'FAILED') {
      // A resend went through after all.
      statusBox.dataset.status = 'UNVERIFIED';
      statusText.textContent = t.waiting;
    }
  };

  let verified = false;
  const onVerified = (receipt?: string | null, redirectTo?: string | null) => {
    if (verified) return;
    verified = true;
    watch.stop();
    resender.stop();
    // Said once, by the status live region that is already on the page:
    // the screen changes around it rather than being built anew (a live
    // region put in afresh may go unheard), and neither a second
    // announcement nor a focused heading says it again.
    const way = onward(receipt, redirectTo);
    keepFocus(() => {
      statusBox.dataset.status = 'VERIFIED';
      statusText.textContent = t.verifiedStatus;
      heading.textContent = t.allSet;
      lead.replaceChildren(emailAddress(email),
        receipt && redirectTo ? t.confirmedContinue : t.confirmedSignIn);
      // The heading stays where it is: moved, it would drop the focus.
      for (const gone of [badge, deliveryBox, code, actions, resendNote]) gone.remove();
      statusBox.after(way);
      // The code field or a button that held the focus is gone: on to
      // Continue or Sign in, the way on.
    }, () => way.querySelector('a'));
  };

  const { form: code, revive: reviveCode, reachable: codeReachable } = codeForm({
    label: t.typeCode,
    submit: async (c) => {
      const v = await verifyEmailWithCode(watchToken, c);
      onVerified(v.receipt, v.redirectTo);
    },
    dead: t.codeDead,
    revived: t.codeRevived,
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
      const was = badge.dataset.state;
      badge.dataset.state = c;
      badge.textContent = t.connection[c];
      // Said once per outage: the client reports each attempt to
      // reconnect (its start and its failure), every few seconds.
      if (c === 'reconnecting' && was !== 'reconnecting') announce(t.connectionLost);
      if (c !== 'live') return;
      // The server answers again: a "could not reach the server" from a
      // resend or a code sent while it was away is out of date, and goes
      // now rather than at the person's next action.
      resender.reachable();
      codeReachable();
      if (was === 'reconnecting') announce(t.connectionBack);
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

  show(titleRow, lead, statusBox, deliveryBox, code, actions, resendNote);
}
