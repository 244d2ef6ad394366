import { h } from './dom';
import { t } from './i18n';

/**
 * The way on from a verified address, so that success is never a dead end:
 * back to the app that sent the person here (`redirectTo`, checked by the
 * server when they registered) with the receipt in the fragment, which
 * never reaches a server log; without one, signing in.
 */
export function onward(receipt?: string | null, redirectTo?: string | null): HTMLElement {
  const to = receipt && redirectTo ? continueURL(redirectTo, receipt) : null;
  if (!to) {
    return h('div', { class: 'onward' }, h('a', { class: 'button primary', id: 'sign-in', href: '/sign-in' }, t.signIn));
  }
  return h('div', { class: 'onward' },
    h('a', { class: 'button primary', id: 'continue', href: to.href }, t.continue),
    h('p', { class: 'note' }, ...t.takesBack(h('strong', {}, to.host))),
  );
}

/** redirectTo with #receipt=… in place of any fragment it had; null for
 * anything but an http(s) URL, so a link can never run script. */
function continueURL(redirectTo: string, receipt: string): URL | null {
  let u: URL;
  try {
    u = new URL(redirectTo);
  } catch {
    return null;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
  u.hash = `receipt=${receipt}`;
  return u;
}
