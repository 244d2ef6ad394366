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

/** The server's rules, checked before sending so mistakes show at once. */
export function checkEmail(email: string): string | null {
  const e = email.trim();
  if (!e) return t.enterEmail;
  // In bytes of UTF-8, lower-cased, as the server counts (SMTP's limit):
  // 185 accented letters are too many, though fewer than 254.
  if (new TextEncoder().encode(e.toLowerCase()).length > 254) return t.emailTooLong;
  if (!/^[^\s@<>()",;:]+@[^\s@<>()",;:[\]]+\.[^\s@<>()",;:[\]]+$/.test(e) || e.endsWith('.')) {
    return t.emailLike;
  }
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
