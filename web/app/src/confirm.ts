import { asApiError, resend, verifyEmail } from './api';
import { announce, h, show } from './dom';
import { checkEmail, describe } from './messages';
import { onward } from './onward';

/** The page behind the email link. Only the button verifies: mail scanners
 * open links, people press buttons. */
export function confirmPage(token: string): void {
  // Keep the token out of the address bar, history and any screenshot.
  history.replaceState(null, '', location.pathname);
  const result = h('div', { id: 'result', role: 'status' });
  const button = h('button', { type: 'button', class: 'primary', id: 'confirm' }, 'Confirm my email');

  const outcome = (kind: string, title: string, ...body: (Node | string)[]) => {
    button.remove();
    result.dataset.outcome = kind;
    const heading = h('h2', { tabindex: '-1' }, title);
    result.replaceChildren(heading, ...body);
    heading.focus();
    announce(title);
  };

  button.addEventListener('click', async () => {
    button.disabled = true;
    button.textContent = 'Confirming…';
    try {
      const v = await verifyEmail(token);
      if (v.alreadyVerified) {
        outcome('already', 'Already verified', h('p', {}, h('strong', {}, v.email), ' was confirmed earlier. Nothing else to do.'),
          onward(v.receipt, v.redirectTo));
      } else {
        outcome('verified', 'Email verified', h('p', {}, h('strong', {}, v.email),
          ' is confirmed. If the sign-up page is still open, on this or another device, it has updated.'),
          onward(v.receipt, v.redirectTo));
      }
    } catch (err) {
      const e = asApiError(err);
      switch (e.code) {
        case 'TOKEN_EXPIRED':
          outcome('expired', 'This link has expired', h('p', {}, 'Links work for a limited time. Get a fresh one:'), resendForm());
          break;
        case 'INVALID_TOKEN':
        case 'BAD_USER_INPUT':
          outcome('invalid', 'This link is not valid',
            h('p', {}, 'It may be incomplete or from an old email. Open the link in the newest email we sent you, or ', h('a', { href: '/' }, 'sign up again'), '.'));
          break;
        default:
          result.replaceChildren(h('p', { class: 'form-error' }, describe(e)));
          button.disabled = false;
          button.textContent = 'Try again';
      }
    }
  });

  show(
    h('h1', {}, 'Confirm your email'),
    h('p', { class: 'lead' }, 'Press the button to confirm this address. Opening the link alone changes nothing.'),
    token ? button : null,
    token ? result : null,
  );
  if (!token) {
    result.replaceChildren();
    document.getElementById('app')!.append(result);
    outcome('invalid', 'This link is not valid',
      h('p', {}, 'It has no token. Open the link in the newest email we sent you, or ', h('a', { href: '/' }, 'sign up again'), '.'));
  }
}

function resendForm(): HTMLFormElement {
  const email = h('input', { id: 'resend-email', type: 'email', autocomplete: 'email', required: true, 'aria-describedby': 'resend-note' });
  const note = h('p', { id: 'resend-note', class: 'note' });
  const send = h('button', { type: 'submit', class: 'secondary' }, 'Send me a new link');
  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'resend-email' }, 'Your email'), email),
    send, note);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const bad = checkEmail(email.value);
    if (bad) {
      note.textContent = bad;
      email.focus();
      return;
    }
    send.disabled = true;
    try {
      await resend(email.value.trim());
      note.textContent = 'If that address is waiting for confirmation, a new link is on its way. Check your inbox.';
    } catch (err) {
      const e = asApiError(err);
      note.textContent = describe(e);
      send.disabled = false;
    }
  });
  return form;
}
