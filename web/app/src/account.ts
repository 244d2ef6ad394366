// /sign-in: the sign-in form, the signed-in view, and changing the address.
import { ApiError, asApiError, changeEmail, confirmEmailChange, signIn } from './api';
import { codeForm } from './code';
import { announce, countdown, h, show } from './dom';
import { checkEmail, describe } from './messages';
import { passwordInput } from './password';
import { resendControl } from './resend';
import { clearSignedIn, emailClaim, load, loadSignedIn, saveSignedIn, type SignedIn } from './session';

/** Starts at the screen the tab was on: signed in, confirming a change, or
 * the form. */
export function signInFlow(): void {
  const s = loadSignedIn();
  if (!s) signInPage();
  else if (s.pending) confirmChangePage(s);
  else signedInPage(s);
}

/** A call needing the token found it invalid or expired: back to the form. */
function sessionEnded(): void {
  clearSignedIn();
  signInPage(describe(new ApiError('session ended', 'UNAUTHENTICATED')));
}

function signInPage(notice?: string): void {
  document.title = 'Sign in · verifier';
  const email = h('input', {
    id: 'email', name: 'email', type: 'email', autocomplete: 'username', inputmode: 'email',
    required: true, spellcheck: 'false', 'aria-describedby': 'signin-error',
  });
  // Coming from the success screen of a sign-up in this tab: the address
  // is known already.
  email.value = load()?.email ?? '';
  const { input: password, field: passwordField } = passwordInput('current-password', 'signin-error');
  const formError = h('p', { id: 'signin-error', class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  // Offered only when the password was right but the address is not
  // confirmed yet: a fresh link is the way on.
  const { button: resendButton, note: resendNote } = resendControl({
    label: 'Send me a new link', again: 'Send again', sent: 'We sent a new link. Open it, then sign in here.',
    email: () => email.value.trim(),
  });
  const unverified = h('div', { class: 'unverified' }, resendButton, resendNote);
  unverified.hidden = true;

  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), passwordField),
    formError,
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const address = email.value.trim();
    const bad = checkEmail(address) ?? (password.value ? null : 'Enter your password.');
    if (bad) {
      formError.textContent = bad;
      (checkEmail(address) ? email : password).focus();
      return;
    }
    formError.textContent = '';
    unverified.hidden = true;
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const r = await signIn(address, password.value);
      const s: SignedIn = { token: r.token, expiresAt: r.expiresAt, email: emailClaim(r.token) || address };
      saveSignedIn(s);
      signedInPage(s);
      return;
    } catch (err) {
      const e = asApiError(err);
      formError.textContent = describe(e);
      submit.disabled = false;
      submit.textContent = 'Sign in';
      if (e.code === 'EMAIL_NOT_VERIFIED') {
        unverified.hidden = false;
        resendButton.focus();
      } else if (e.code === 'RATE_LIMITED') {
        countdown(submit, e.retryAfterSeconds ?? 60, (n) => `Try again in ${n} s`);
      } else {
        password.focus();
        password.select();
      }
    }
  });

  show(
    h('h1', {}, 'Sign in'),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('p', { class: 'lead' }, 'With the address you confirmed and your password.'),
    form,
    unverified,
    h('p', { class: 'note' }, 'No account yet? ', h('a', { href: '/' }, 'Create one')),
  );
}

function signedInPage(s: SignedIn, notice?: string): void {
  document.title = 'Signed in · verifier';
  const change = h('button', { type: 'button', class: 'secondary', id: 'change-address' }, 'Change address');
  const out = h('button', { type: 'button', class: 'link', id: 'sign-out' }, 'Sign out');
  change.addEventListener('click', () => changePage(s));
  out.addEventListener('click', () => {
    clearSignedIn();
    signInPage('You are signed out.');
  });
  show(
    h('h1', {}, 'You are signed in'),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('p', { class: 'lead' }, 'Your address: ', h('strong', { class: 'address', id: 'address' }, s.email)),
    h('div', { class: 'actions' }, change, out),
  );
}

function changePage(s: SignedIn): void {
  document.title = 'Change address · verifier';
  const error = h('p', { id: 'new-email-error', class: 'field-error' });
  const input = h('input', {
    id: 'new-email', name: 'email', type: 'email', autocomplete: 'email', inputmode: 'email',
    required: true, spellcheck: 'false', 'aria-describedby': 'new-email-error',
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Send link and code');
  const cancel = h('button', { type: 'button', class: 'link' }, 'Cancel');
  cancel.addEventListener('click', () => signedInPage(s));
  const fail = (msg: string) => {
    error.textContent = msg;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  };
  input.addEventListener('input', () => {
    error.textContent = '';
    input.removeAttribute('aria-invalid');
  });
  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'new-email' }, 'New email address'), input, error),
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const address = input.value.trim();
    const bad = checkEmail(address) ?? (address.toLowerCase() === s.email.toLowerCase() ? 'That is your address already.' : null);
    if (bad) return fail(bad);
    input.removeAttribute('aria-invalid');
    error.textContent = '';
    submit.disabled = true;
    submit.textContent = 'Sending…';
    try {
      await changeEmail(s.token, address);
      s.pending = address;
      saveSignedIn(s);
      confirmChangePage(s);
      return;
    } catch (err) {
      const e = asApiError(err);
      if (e.code === 'UNAUTHENTICATED') return sessionEnded();
      submit.disabled = false;
      submit.textContent = 'Send link and code';
      fail(describe(e));
      if (e.code === 'RATE_LIMITED') countdown(submit, e.retryAfterSeconds ?? 60, (n) => `Try again in ${n} s`);
    }
  });
  show(
    h('h1', {}, 'Change your address'),
    h('p', { class: 'lead' }, 'Your address now: ', h('strong', { class: 'address' }, s.email),
      '. We will send a link and a code to the new address; nothing changes until you confirm it there.'),
    form,
    h('div', { class: 'actions' }, cancel),
  );
}

function confirmChangePage(s: SignedIn): void {
  document.title = 'Confirm your new address · verifier';
  const pending = s.pending ?? '';
  const drop = () => {
    delete s.pending;
    saveSignedIn(s);
  };
  const other = h('button', { type: 'button', class: 'link' }, 'Use a different address');
  other.addEventListener('click', () => {
    drop();
    changePage(s);
  });
  const cancel = h('button', { type: 'button', class: 'link' }, 'Cancel');
  cancel.addEventListener('click', () => {
    drop();
    signedInPage(s);
  });
  const code = codeForm({
    label: 'The 6-digit code from that email',
    submit: async (c) => {
      const v = await confirmEmailChange(s.token, c);
      s.email = v.email;
      drop();
      const done = `Your address is now ${v.email}.`;
      signedInPage(s, done);
      announce(done);
    },
    dead: `Use the link in the email to ${pending}, or start the change again.`,
    other: (e) => {
      if (e.code !== 'UNAUTHENTICATED') return false;
      sessionEnded();
      return true;
    },
  });
  show(
    h('h1', {}, 'Confirm your new address'),
    h('p', { class: 'lead' }, 'We sent a link and a code to ', h('strong', { class: 'address' }, pending),
      '; nothing changes until you confirm.'),
    code,
    h('div', { class: 'actions' }, other, cancel),
  );
}
