import { asApiError, type ApiError } from './api';
import { announce, countdown, h, setUnavailable, unavailable } from './dom';
import { describe } from './messages';
import { t } from './i18n';

const LENGTH = 6;

export interface CodeFormOptions {
  label: string;
  /** Sends the code; resolves when it was right, throws an ApiError if not. */
  submit(code: string): Promise<void>;
  /** What to say once the code is dead (5 wrong tries, or expired): where
   * to go instead. */
  dead: string;
  /** Takes an error the form does not handle itself (e.g. an ended
   * session); returns true when it did. */
  other?(e: ApiError): boolean;
  /** Called when the code died, after the form made itself unavailable. */
  onDead?(): void;
  /** What the field says once a new email brought it back (revive). */
  revived?: string;
}

/** The code field's form, and how to bring a dead field back. */
export interface CodeForm {
  form: HTMLFormElement;
  /**
   * The server answers again: a "could not reach the server" under the
   * field goes, and the field is no longer marked wrong (the code was
   * never checked). Does nothing if the field says anything else.
   */
  reachable(): void;
  /**
   * Makes a dead field (and "Verify code") available again, after a new
   * email went out: an expired code cannot be told from one killed by
   * wrong tries (both answer INVALID_CODE with attemptsLeft 0), and a
   * resend after the expiry mails a new code. If the tries were spent the
   * new email has the link only, and any code typed is refused, which
   * kills the field again. Does nothing while the code lives.
   */
  revive(): void;
}

/**
 * The 6-digit code field of the waiting screen and the change-address
 * screen. One plain input rather than six boxes: the phone's keyboard shows
 * digits, the browser can offer the code from an SMS-like source
 * (autocomplete="one-time-code"), a screen reader reads one field, and a
 * paste of "123 456" or "123456" just works. It submits by itself on the
 * sixth digit; the button is there for those who look for one.
 */
export function codeForm(opts: CodeFormOptions): CodeForm {
  const error = h('p', { id: 'code-error', class: 'field-error' });
  const input = h('input', {
    id: 'code', name: 'code', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code',
    // No maxlength: it would cut a pasted "123 456" to "123 45" before we
    // could drop the space.
    pattern: '[0-9]*', spellcheck: 'false', 'aria-describedby': 'code-error', class: 'code',
  });
  const button = h('button', { type: 'submit', class: 'secondary', id: 'verify-code' }, t.verifyCode);
  const form = h('form', { novalidate: true, class: 'code-form' },
    h('div', { class: 'field' },
      h('label', { for: 'code' }, opts.label),
      h('div', { class: 'code-row' }, input, button),
      error,
    ),
  );

  let busy = false;
  // Set once the code is dead (too many wrong tries, or expired): nothing
  // is sent any more, whatever is pressed, until a new email brings the
  // field back (revive).
  let dead = false;
  // The last code sent: auto-submit fires once per code, not again while a
  // wrong one stays in the field.
  let tried = '';
  // The error says the server could not be reached.
  let unreachable = false;
  const fail = (msg: string) => {
    unreachable = false;
    error.textContent = msg;
    input.setAttribute('aria-invalid', 'true');
    announce(msg);
  };
  const send = async () => {
    const code = input.value.replace(/\D/g, '');
    if (busy || dead) return;
    if (code.length !== LENGTH) {
      fail(t.enterDigits(LENGTH));
      input.focus();
      return;
    }
    busy = true;
    tried = code;
    // Unavailable, not disabled, while the code is checked: a keyboard
    // press on "Verify code" leaves the focus on it.
    setUnavailable(button, true);
    button.textContent = t.checking;
    error.textContent = '';
    unreachable = false;
    try {
      await opts.submit(code);
      return;
    } catch (err) {
      const e = asApiError(err);
      if (opts.other?.(e)) return;
      button.textContent = t.verifyCode;
      setUnavailable(button, false);
      if (e.code === 'INVALID_CODE' && e.attemptsLeft === 0) {
        fail(`${describe(e)} ${opts.dead}`);
        // Unavailable, not disabled: a disabled field or button drops the
        // focus to the page body and leaves the tab order, so a keyboard
        // or screen-reader user could no longer reach the field to hear
        // why it is dead (its description: what to do instead). Read-only
        // keeps the field focusable but takes no typing; aria-disabled
        // says it is unavailable.
        dead = true;
        input.readOnly = true;
        input.setAttribute('aria-disabled', 'true');
        setUnavailable(button, true);
        opts.onDead?.();
        return;
      }
      fail(describe(e));
      unreachable = e.code === 'NETWORK';
      if (e.code === 'RATE_LIMITED') countdown(button, e.retryAfterSeconds ?? 60, t.tryAgainIn);
      // Selected, so typing the right code replaces the wrong one.
      input.focus();
      input.select();
    } finally {
      busy = false;
    }
  };

  input.addEventListener('input', () => {
    // Digits only, at most six: spaces and dashes from a paste go, and so
    // does anything typed past the sixth digit.
    const digits = input.value.replace(/\D/g, '').slice(0, LENGTH);
    if (input.value !== digits) input.value = digits;
    if (digits.length < LENGTH) {
      input.removeAttribute('aria-invalid');
      tried = '';
    } else if (digits !== tried && !unavailable(button)) {
      void send();
    }
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void send();
  });
  const revive = () => {
    if (!dead) return;
    dead = false;
    tried = '';
    // The dead code goes: the new one is typed or pasted into an empty
    // field, not after six digits that take no more.
    input.value = '';
    input.readOnly = false;
    input.removeAttribute('aria-disabled');
    input.removeAttribute('aria-invalid');
    setUnavailable(button, false);
    const msg = opts.revived ?? '';
    // The field's description no longer says it is dead. Said once,
    // politely, and the focus stays where it is (on the resend button
    // that was pressed): the person may be reading the email first.
    unreachable = false;
    error.textContent = msg;
    if (msg) announce(msg);
  };
  const reachable = () => {
    if (!unreachable) return;
    unreachable = false;
    error.textContent = '';
    input.removeAttribute('aria-invalid');
  };
  return { form, revive, reachable };
}
