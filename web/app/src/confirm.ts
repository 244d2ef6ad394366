import { asApiError, resend, verifyEmail } from './api';
import { emailAddress, h, setUnavailable, show, unavailable } from './dom';
import { checkEmail, describe } from './messages';
import { onward } from './onward';
import { t } from './i18n';

/** The page behind the email link. Only the button verifies: mail scanners
 * open links, people press buttons. */
export function confirmPage(token: string): void {
  // Keep the token out of the address bar, history and any screenshot.
  history.replaceState(null, '', location.pathname);
  document.title = t.titleConfirm;
  const result = h('div', { id: 'result', role: 'status' });
  const button = h('button', { type: 'button', class: 'primary', id: 'confirm' }, t.confirmMyEmail);

  // The outcome is said once, by its heading taking the focus (the button
  // that had it is gone). It goes into a new element in place of the live
  // region, which would say it again, as did a separate announcement.
  const outcome = (kind: string, title: string, ...body: (Node | string)[]) => {
    button.remove();
    const heading = h('h2', { tabindex: '-1' }, title);
    result.replaceWith(h('div', { id: 'result', 'data-outcome': kind }, heading, ...body));
    heading.focus();
  };

  // Unavailable, not disabled, while the request runs: the keyboard focus
  // stays on the button until the outcome takes it.
  button.addEventListener('click', async () => {
    setUnavailable(button, true);
    button.textContent = t.confirming;
    try {
      const v = await verifyEmail(token);
      if (v.alreadyVerified) {
        outcome('already', t.alreadyVerified, h('p', {}, emailAddress(v.email), t.confirmedEarlier),
          onward(v.receipt, v.redirectTo));
      } else {
        outcome('verified', t.emailVerified, h('p', {}, emailAddress(v.email), t.confirmedHere),
          onward(v.receipt, v.redirectTo));
      }
    } catch (err) {
      const e = asApiError(err);
      switch (e.code) {
        case 'TOKEN_EXPIRED':
          outcome('expired', t.linkExpired, h('p', {}, t.linkExpiredLead), resendForm());
          break;
        case 'INVALID_TOKEN':
        case 'BAD_USER_INPUT':
          outcome('invalid', t.linkInvalid, h('p', {}, ...t.linkInvalidLead(h('a', { href: '/' }, t.signUpAgain))));
          break;
        default:
          result.replaceChildren(h('p', { class: 'form-error' }, describe(e)));
          setUnavailable(button, false);
          button.textContent = t.tryAgain;
      }
    }
  });

  show(
    h('h1', {}, t.confirmYourEmail),
    h('p', { class: 'lead' }, t.confirmLead),
    token ? button : null,
    token ? result : null,
  );
  if (!token) {
    result.replaceChildren();
    document.getElementById('app')!.append(result);
    outcome('invalid', t.linkInvalid, h('p', {}, ...t.linkNoToken(h('a', { href: '/' }, t.signUpAgain))));
  }
}

function resendForm(): HTMLFormElement {
  const email = h('input', { id: 'resend-email', type: 'email', autocomplete: 'email', required: true, 'aria-describedby': 'resend-note' });
  const note = h('p', { id: 'resend-note', class: 'note' });
  const send = h('button', { type: 'submit', class: 'secondary' }, t.sendNewLink);
  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'resend-email' }, t.yourEmail), email),
    send, note);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (unavailable(send)) return;
    const bad = checkEmail(email.value);
    if (bad) {
      note.textContent = bad;
      email.focus();
      return;
    }
    setUnavailable(send, true);
    try {
      await resend(email.value.trim());
      note.textContent = t.resendSentMaybe;
    } catch (err) {
      const e = asApiError(err);
      note.textContent = describe(e);
      setUnavailable(send, false);
    }
  });
  return form;
}
