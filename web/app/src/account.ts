// /sign-in: the sign-in form, the signed-in view, and changing the address.
import { ApiError, asApiError, changeEmail, confirmEmailChange, signIn } from './api';
import { codeForm } from './code';
import { countdown, emailAddress, h, holdStill, keepFocus, setUnavailable, show, unavailable } from './dom';
import { checkEmail, describe } from './messages';
import { passwordInput } from './password';
import { resendControl } from './resend';
import { domainHint } from './signup';
import { clearSignedIn, emailClaim, load, loadSignedIn, saveSignedIn, type SignedIn } from './session';
import { t } from './i18n';

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
  document.title = t.titleSignIn;
  const email = h('input', {
    id: 'email', name: 'email', type: 'email', autocomplete: 'username', inputmode: 'email',
    required: true, spellcheck: 'false', 'aria-describedby': 'signin-error',
  });
  // Coming from the success screen of a sign-up in this tab: the address
  // is known already.
  email.value = load()?.email ?? '';
  const { input: password, field: passwordField } = passwordInput('current-password', 'signin-error');
  // Under Sign in, which it answers: appearing, it moves nothing above it.
  const formError = h('p', { id: 'signin-error', class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, t.signIn);
  // Offered only when the password was right but the address is not
  // confirmed yet: a fresh link is the way on.
  const { button: resendButton, note: resendNote } = resendControl({
    label: t.sendNewLink, again: t.sendAgain, sent: t.signInSentLink,
    email: () => email.value.trim(),
  });
  const unverified = h('div', { class: 'unverified' }, resendButton, resendNote);
  unverified.hidden = true;

  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'email' }, t.email), email),
    h('div', { class: 'field' }, h('label', { for: 'password' }, t.password), passwordField),
    submit,
    formError,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    // Already signing in: a second press sends nothing.
    if (unavailable(submit)) return;
    const address = email.value.trim();
    const bad = checkEmail(address) ?? (password.value ? null : t.enterPassword);
    if (bad) {
      formError.textContent = bad;
      (checkEmail(address) ? email : password).focus();
      return;
    }
    formError.textContent = '';
    unverified.hidden = true;
    // Unavailable, not disabled, while the request runs: the keyboard focus
    // stays on the button that was pressed.
    setUnavailable(submit, true);
    submit.textContent = t.signingIn;
    try {
      const r = await signIn(address, password.value);
      const s: SignedIn = { token: r.token, expiresAt: r.expiresAt, email: emailClaim(r.token) || address };
      saveSignedIn(s);
      signedInPage(s);
      return;
    } catch (err) {
      const e = asApiError(err);
      formError.textContent = describe(e);
      setUnavailable(submit, false);
      submit.textContent = t.signIn;
      if (e.code === 'EMAIL_NOT_VERIFIED') {
        unverified.hidden = false;
        resendButton.focus();
      } else if (e.code === 'RATE_LIMITED') {
        countdown(submit, e.retryAfterSeconds ?? 60, t.tryAgainIn);
      } else {
        password.focus();
        password.select();
      }
    }
  });

  show(
    h('h1', {}, t.signIn),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('p', { class: 'lead' }, t.signInLead),
    form,
    unverified,
    h('p', { class: 'note' }, t.noAccount, h('a', { href: '/' }, t.createOne)),
  );
}

/** The signed-in screen under its heading: the address, and the buttons
 * to change it or sign out. */
function signedInParts(s: SignedIn) {
  const change = h('button', { type: 'button', class: 'secondary', id: 'change-address' }, t.changeAddress);
  const out = h('button', { type: 'button', class: 'link', id: 'sign-out' }, t.signOut);
  change.addEventListener('click', () => changePage(s));
  out.addEventListener('click', () => {
    clearSignedIn();
    signInPage(t.signedOut);
  });
  return {
    lead: h('p', { class: 'lead' }, t.yourAddress, emailAddress(s.email, { id: 'address' })),
    actions: h('div', { class: 'actions' }, change, out),
    change,
  };
}

function signedInPage(s: SignedIn): void {
  document.title = t.titleSignedIn;
  const { lead, actions } = signedInParts(s);
  show(h('h1', {}, t.signedIn), lead, actions);
}

function changePage(s: SignedIn): void {
  document.title = t.titleChange;
  const error = h('p', { id: 'new-email-error', class: 'field-error' });
  const input = h('input', {
    id: 'new-email', name: 'email', type: 'email', autocomplete: 'email', inputmode: 'email',
    required: true, spellcheck: 'false', 'aria-describedby': 'new-email-error new-email-suggestion',
  });
  // A mistyped domain would send the link and code nowhere, as at sign-up.
  // Offered when the button is pressed, not when the field is left.
  const submit = h('button', { type: 'submit', class: 'primary' }, t.sendLinkAndCode);
  const domain = domainHint(input, 'new-email-suggestion', submit);
  const cancel = h('button', { type: 'button', class: 'link' }, t.cancel);
  cancel.addEventListener('click', () => signedInPage(s));
  // An error longer than the line kept for it keeps Send link and code
  // where it was on the screen (holdStill).
  const fail = (msg: string) => {
    holdStill(submit, () => {
      error.textContent = msg;
      input.setAttribute('aria-invalid', 'true');
    });
    input.focus();
  };
  input.addEventListener('input', () => {
    error.textContent = '';
    input.removeAttribute('aria-invalid');
    domain.typed();
  });
  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'new-email' }, t.newEmail), input, domain.hint, error),
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (unavailable(submit)) return;
    const address = input.value.trim();
    const bad = checkEmail(address) ?? (address.toLowerCase() === s.email.toLowerCase() ? t.sameAddress : null);
    if (bad) return fail(bad);
    if (domain.holdBack()) return;
    input.removeAttribute('aria-invalid');
    error.textContent = '';
    setUnavailable(submit, true);
    submit.textContent = t.sending;
    try {
      await changeEmail(s.token, address);
      s.pending = address;
      saveSignedIn(s);
      confirmChangePage(s);
      return;
    } catch (err) {
      const e = asApiError(err);
      if (e.code === 'UNAUTHENTICATED') return sessionEnded();
      setUnavailable(submit, false);
      submit.textContent = t.sendLinkAndCode;
      fail(describe(e));
      if (e.code === 'RATE_LIMITED') countdown(submit, e.retryAfterSeconds ?? 60, t.tryAgainIn);
    }
  });
  show(
    h('h1', {}, t.changeYourAddress),
    h('p', { class: 'lead' }, ...t.changeLead(emailAddress(s.email))),
    form,
    h('div', { class: 'actions' }, cancel),
  );
}

function confirmChangePage(s: SignedIn): void {
  document.title = t.titleConfirmChange;
  const pending = s.pending ?? '';
  const drop = () => {
    delete s.pending;
    saveSignedIn(s);
  };
  const other = h('button', { type: 'button', class: 'link' }, t.differentAddress);
  other.addEventListener('click', () => {
    drop();
    changePage(s);
  });
  const cancel = h('button', { type: 'button', class: 'link' }, t.cancel);
  cancel.addEventListener('click', () => {
    drop();
    signedInPage(s);
  });
  const heading = h('h1', {}, t.confirmNewAddress);
  const lead = h('p', { class: 'lead' }, ...t.confirmChangeLead(emailAddress(pending)));
  const actions = h('div', { class: 'actions' }, other, cancel);
  // A live region on the page from the start, empty (and so unseen) until
  // the change went through.
  const said = h('div', { id: 'notice', role: 'status' });
  // No resend here, so nothing brings a dead code back (revive): a new
  // code comes with starting the change again.
  const { form: code } = codeForm({
    label: t.codeFromThatEmail,
    submit: async (c) => {
      const v = await confirmEmailChange(s.token, c);
      s.email = v.email;
      drop();
      // "Your address is now …" is said once, by the live region already
      // on the page: the screen becomes the signed-in one around it rather
      // than being built anew (a live region put in afresh may go unheard),
      // with no announcement besides and no heading taking the focus.
      const signed = signedInParts(s);
      keepFocus(() => {
        document.title = t.titleSignedIn;
        heading.textContent = t.signedIn;
        lead.replaceWith(signed.lead);
        code.remove();
        actions.replaceWith(signed.actions);
        said.replaceChildren(h('p', { class: 'notice' }, t.addressNow(v.email)));
        // The code field or "Verify code" that held the focus is gone: on
        // to the screen's first button.
      }, () => signed.change);
    },
    dead: t.changeCodeDead(pending),
    other: (e) => {
      if (e.code !== 'UNAUTHENTICATED') return false;
      sessionEnded();
      return true;
    },
    // The field went dead under the focus: on to starting the change again.
    onDead: () => other.focus(),
  });
  show(heading, said, lead, code, actions);
}
