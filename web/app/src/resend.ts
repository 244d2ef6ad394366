import { asApiError, resend } from './api';
import { countdown, h, setUnavailable } from './dom';
import { describe } from './messages';
import { t } from './i18n';

/**
 * A "send me a new link" button with its note, for the waiting screen and
 * the sign-in page: inside the cooldown it counts down until another email
 * may go out. `stop()` ends the countdown when the screen is left.
 */
export function resendControl(opts: {
  label: string; again: string; sent: string; email(): string;
  /** Called once an email went out, after the note says so. */
  onSent?(): void;
}) {
  const button = h('button', { type: 'button', class: 'secondary', id: 'resend' }, opts.label);
  const note = h('p', { class: 'note', role: 'status' });
  let stop = () => {};
  // The note says the server could not be reached: out of date once it can.
  let unreachable = false;
  // Unavailable (not disabled) while the request runs and the countdown
  // lasts, so the keyboard focus stays on the button.
  button.addEventListener('click', async () => {
    setUnavailable(button, true);
    note.textContent = '';
    unreachable = false;
    try {
      await resend(opts.email());
      note.textContent = opts.sent;
      setUnavailable(button, false);
      opts.onSent?.();
    } catch (err) {
      const e = asApiError(err);
      if (e.code === 'RATE_LIMITED') {
        note.textContent = t.recentlySent;
        stop = countdown(button, e.retryAfterSeconds ?? 60, (n) => t.resendIn(opts.again, n));
      } else {
        note.textContent = describe(e);
        unreachable = e.code === 'NETWORK';
        setUnavailable(button, false);
      }
    }
  });
  /** The server answers again (the waiting screen's watch is live): a
   * "could not reach the server" note goes rather than stay until the
   * next press. */
  const reachable = () => {
    if (!unreachable) return;
    unreachable = false;
    note.textContent = '';
  };
  return { button, note, stop: () => stop(), reachable };
}
