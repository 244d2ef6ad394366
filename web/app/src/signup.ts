import { asApiError, register } from './api';
import { afterPress, emailAddress, h, holdStill, setUnavailable, show, unavailable } from './dom';
import { checkEmail, checkPassword, describe, strength, suggest } from './messages';
import { passwordInput } from './password';
import { lang, t } from './i18n';

/** The sign-up form. `notice` is shown above it (e.g. an expired watch);
 * `prefill` is the address to start from (starting over from the waiting
 * screen, e.g. after the mail server refused it); `redirectTo` is where
 * the integrating app wants the person back once verified. */
export function signupPage(opts: {
  onRegistered(email: string, watchToken: string): void;
  notice?: string;
  prefill?: string;
  redirectTo?: string;
}): void {
  const { notice, prefill } = opts;
  const emailError = h('p', { id: 'email-error', class: 'field-error' });
  const email = h('input', {
    id: 'email', name: 'email', type: 'email', autocomplete: 'email', inputmode: 'email',
    required: true, spellcheck: 'false', 'aria-describedby': 'email-error email-suggestion',
  });
  if (prefill) email.value = prefill;
  const submit = h('button', { type: 'submit', class: 'primary' }, t.createAccount);
  const domain = domainHint(email, 'email-suggestion', submit);
  const pwError = h('p', { id: 'password-error', class: 'field-error' });
  const meter = h('span', { class: 'meter', 'data-score': '0', 'aria-hidden': 'true' }, h('span'), h('span'), h('span'), h('span'));
  const hint = h('span', { id: 'password-strength' }, t.atLeast8);
  const { input: password, field: passwordField } = passwordInput('new-password', 'password-hint password-error');
  // Under Create account, which it answers: appearing, it moves nothing
  // above it.
  const formError = h('p', { class: 'form-error', role: 'alert' });

  // An error one line long takes the place its empty line keeps
  // (styles.css); a longer one, shown when a field is left or the form
  // sent, keeps Create account where it was on the screen (holdStill).
  // While the person types, what they type into stays put instead.
  const setError = (input: HTMLInputElement, out: HTMLElement, msg: string | null, typing = false) => {
    const change = () => {
      out.textContent = msg ?? '';
      if (msg) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    };
    if (typing) change();
    else holdStill(submit, change);
  };
  // Errors appear once a field was left or the form submitted, then update
  // as the person types: no scolding before they finish.
  const touched = new Set<HTMLInputElement>();
  const validate = (input: HTMLInputElement, typing = false) => {
    if (!touched.has(input)) return null;
    const msg = input === email ? checkEmail(email.value) : checkPassword(password.value);
    setError(input, input === email ? emailError : pwError, msg, typing);
    return msg;
  };
  for (const input of [email, password]) {
    input.addEventListener('blur', () => afterPress(() => {
      if (input.value) touched.add(input);
      validate(input);
      if (input === email) domain.offer(touched.has(email));
    }));
    input.addEventListener('input', () => {
      // The hint goes first: the field is kept as tall as it was with the
      // hint, not with the hint and a new error both.
      if (input === email) domain.typed();
      validate(input, true);
    });
  }
  password.addEventListener('input', () => {
    const s = strength(password.value);
    meter.dataset.score = String(s.score);
    hint.textContent = password.value ? t.strengthIs(s.label) : t.atLeast8;
  });

  const form = h('form', { novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'email' }, t.email),
      email,
      domain.hint,
      emailError,
    ),
    h('div', { class: 'field' },
      h('label', { for: 'password' }, t.password),
      passwordField,
      h('p', { id: 'password-hint', class: 'hint' }, meter, hint),
      pwError,
    ),
    submit,
    formError,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    // Already sending: a second press (Enter in a field) sends nothing.
    if (unavailable(submit)) return;
    touched.add(email).add(password);
    const bad = [validate(email) && email, validate(password) && password].find(Boolean);
    if (bad) {
      (bad as HTMLInputElement).focus();
      return;
    }
    if (domain.holdBack()) return;
    formError.textContent = '';
    // Unavailable, not disabled, while the request runs: the keyboard focus
    // stays on the button that was pressed.
    setUnavailable(submit, true);
    submit.textContent = t.creatingAccount;
    try {
      const address = email.value.trim();
      opts.onRegistered(address, await register(address, password.value, lang, opts.redirectTo));
    } catch (err) {
      const apiErr = asApiError(err);
      const msg = describe(apiErr);
      if (apiErr.code === 'BAD_USER_INPUT' && /^email/i.test(apiErr.message)) {
        setError(email, emailError, msg);
        email.focus();
      } else if (apiErr.code === 'BAD_USER_INPUT' && /^password/i.test(apiErr.message)) {
        setError(password, pwError, msg);
        password.focus();
      } else if (apiErr.code === 'BAD_USER_INPUT' && /redirect/i.test(apiErr.message)) {
        // Nothing the person typed is wrong: the app that sent them here
        // asked to have them back at a site this service does not allow.
        formError.replaceChildren(...t.badRedirect(h('a', { href: '/' }, t.signUpWithoutIt)));
      } else {
        formError.textContent = msg;
      }
      setUnavailable(submit, false);
      submit.textContent = t.createAccount;
    }
  });

  show(
    h('h1', {}, t.createYourAccount),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('p', { class: 'lead' }, t.signupLead),
    form,
    h('p', { class: 'note' }, t.haveAccount, h('a', { href: '/sign-in' }, t.signIn)),
  );
}

/**
 * "Did you mean ann@gmail.com? Use it" under an email field whose domain
 * looks like a typo of a common one (gmail.con), for sign-up and a new
 * address; "Use it" puts the suggestion in the field. `offer(shown)`
 * updates it (shown: once the field was left, or the form sent); `typed()`
 * is for the field's input events. `holdBack()` is for the form's submit:
 * true, with the focus back on the field, the first time an address with a
 * suggestion is sent; a second press keeps the address as typed (such a
 * domain may be real).
 *
 * The hint never moves the form's `button` from under a pointer about to
 * press it. Shown alone in its field, it takes the place the empty error
 * line keeps (styles.css), so a one-line hint moves nothing. A longer one
 * (a long address, a phone's width) would push the button down, so it
 * never comes or changes as the person types, only when the field is left
 * (sign-up, once the press that left it is released: afterPress) or the
 * form sent, and then the page scrolls to keep the button where it was on
 * the screen (holdStill), as it does when the hint goes; one that typing
 * made out of date goes but leaves its field as tall until then.
 */
export function domainHint(input: HTMLInputElement, id: string, button: HTMLButtonElement) {
  const hint = h('p', { id, class: 'suggestion' });
  // The address a suggestion is shown for, and the one held back once.
  let suggested = '';
  let heldBack = '';
  // The field kept as tall as with the hint that typing made go.
  const release = () => {
    const field = hint.parentElement;
    if (field) field.style.minHeight = '';
  };
  const offer = (shown = true) => holdStill(button, () => {
    release();
    const address = input.value.trim();
    const fix = shown && !checkEmail(address) ? suggest(address) : null;
    // The same suggestion stays as it is: the blur of the field as "Use it"
    // is pressed must not swap the button away under the click.
    if (fix && address === suggested) return;
    suggested = fix ? address : '';
    if (!fix) return hint.replaceChildren();
    const use = h('button', { type: 'button', class: 'link' }, t.useIt);
    use.addEventListener('click', () => {
      input.value = fix;
      offer();
      input.focus();
    });
    hint.replaceChildren(...t.didYouMean(emailAddress(fix), use));
  });
  const typed = () => {
    if (!suggested || input.value.trim() === suggested) return;
    const field = hint.parentElement;
    if (field && !field.style.minHeight) field.style.minHeight = `${field.getBoundingClientRect().height}px`;
    suggested = '';
    hint.replaceChildren();
  };
  const holdBack = () => {
    offer();
    if (!suggested || heldBack === suggested) return false;
    heldBack = suggested;
    input.focus();
    return true;
  };
  return { hint, offer, typed, holdBack };
}
