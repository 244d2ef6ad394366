import type { ApiError } from './api';
import { t } from './i18n';

/** Plain words for an API error. */
export function describe(e: ApiError): string {
  switch (e.code) {
    case 'BAD_USER_INPUT':
      return t.badInput(e.message);
    case 'INVALID_TOKEN':
      return t.invalidToken;
    case 'TOKEN_EXPIRED':
      return t.tokenExpired;
    case 'RATE_LIMITED':
      return t.rateLimited(e.retryAfterSeconds ?? 60);
    case 'INVALID_CODE':
      return e.attemptsLeft === 0 ? t.codeNoLonger : t.codeWrong(e.attemptsLeft);
    case 'INVALID_CREDENTIALS':
      // One answer for an unknown address and a wrong password: the
      // server does not say which, neither does the page.
      return t.invalidCredentials;
    case 'EMAIL_NOT_VERIFIED':
      return t.notVerified;
    case 'UNAUTHENTICATED':
      return t.unauthenticated;
    case 'NETWORK':
      return t.network;
    default:
      return t.internal;
  }
}

/** The length of s as the server counts an address: bytes of UTF-8 once
 * lower-cased by Go, character by character (İ becomes i, one byte; in
 * JavaScript i and a combining dot, three). */
function serverBytes(s: string): number {
  return new TextEncoder().encode(s.replace(/\u0130/g, 'i').toLowerCase()).length;
}

/** The server's rules, checked before sending so mistakes show at once. */
export function checkEmail(email: string): string | null {
  const e = email.trim();
  if (!e) return t.enterEmail;
  // SMTP's limits, in bytes, as the server counts: 185 accented letters
  // are too many, though fewer than 254.
  if (serverBytes(e) > 254) return t.emailTooLong;
  if (!/^[^\s@<>()",;:]+@[^\s@<>()",;:[\]]+\.[^\s@<>()",;:[\]]+$/.test(e) || e.endsWith('.')) {
    return t.emailLike;
  }
  // The server refuses a longer one with no more than "not a valid
  // address": the person is told which part to shorten.
  const local = e.slice(0, e.lastIndexOf('@'));
  if (serverBytes(local) > 64) return t.localTooLong(/^[\x00-\x7f]*$/.test(local));
  return null;
}

export function checkPassword(pw: string): string | null {
  const n = [...pw].length;
  if (n < 8) return t.pwShort;
  if (n > 256) return t.pwLong;
  return null;
}

/** A rough strength score from 0 to 4, for the hint only. */
export function strength(pw: string): { score: number; label: string } {
  const n = [...pw].length;
  let score = 0;
  if (n >= 8) score++;
  if (n >= 12) score++;
  if (n >= 16) score++;
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(pw)).length;
  if (classes >= 3) score++;
  if (/^(.)\1+$/.test(pw) || /^(?:password|12345678|qwertyui)/i.test(pw)) score = Math.min(score, 1);
  score = Math.min(score, 4);
  return { score, label: t.strengths[score] };
}

// Mail domains many people have, for suggest(). A domain one slip away
// from one of them is likely a typo of it; the short ones and the real
// domains one slip away from another (mail.com, ymail.com) only count as
// known, never as a suggestion: ms.com is no typo of msn.com.
const popular = ['gmail.com', 'googlemail.com', 'yahoo.com', 'hotmail.com', 'outlook.com', 'icloud.com', 'protonmail.com',
  'live.com', 'yahoo.de', 'hotmail.de', 'outlook.de', 't-online.de', 'freenet.de', 'posteo.de', 'mailbox.org'];
const known = new Set([...popular, 'ymail.com', 'mail.com', 'email.com', 'gmx.com', 'gmx.de', 'gmx.net', 'web.de',
  'me.com', 'mac.com', 'msn.com', 'aol.com', 'proton.me']);
// Endings that are no top-level domain but one slip away from a common one.
const tlds: Record<string, string> = {
  con: 'com', cmo: 'com', ocm: 'com', vom: 'com', xom: 'com', cpm: 'com', cim: 'com', comm: 'com', coom: 'com',
  nte: 'net', nett: 'net', ogr: 'org', orgg: 'org',
};

/** Whether a and b are one insertion, deletion, change or swap of two
 * neighbouring characters apart. */
function oneSlip(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 1 || a === b) return false;
  let i = 0;
  while (a[i] === b[i]) i++;
  const [x, y] = [a.slice(i), b.slice(i)];
  return x.slice(1) === y.slice(1) || x.slice(1) === y || x === y.slice(1) || (x[0] === y[1] && x[1] === y[0] && x.slice(2) === y.slice(2));
}

/** The address the person most likely meant when its domain looks like a
 * typo of a common one (ann@gmail.con → ann@gmail.com), else null. Only a
 * suggestion: such a domain may be real. */
export function suggest(email: string): string | null {
  const at = email.lastIndexOf('@');
  const domain = email.slice(at + 1).toLowerCase();
  if (at < 1 || known.has(domain)) return null;
  const dot = domain.lastIndexOf('.');
  let fixed = domain.slice(0, dot + 1) + (tlds[domain.slice(dot + 1)] ?? domain.slice(dot + 1));
  if (!known.has(fixed)) fixed = popular.find((p) => oneSlip(fixed, p)) ?? fixed;
  return fixed === domain ? null : `${email.slice(0, at + 1)}${fixed}`;
}
