import type { ApiError } from './api';

/** Plain words for an API error. */
export function describe(e: ApiError): string {
  switch (e.code) {
    case 'BAD_USER_INPUT':
      return capitalise(e.message) + '.';
    case 'INVALID_TOKEN':
      return 'This link is not valid. Use the link in the newest email we sent you.';
    case 'TOKEN_EXPIRED':
      return 'This link has expired.';
    case 'RATE_LIMITED':
      return `Please wait ${seconds(e.retryAfterSeconds ?? 60)} before trying again.`;
    case 'INVALID_CODE':
      return e.attemptsLeft === 0
        ? 'This code no longer works.'
        : `That code is not right — ${e.attemptsLeft === 1 ? '1 try' : `${e.attemptsLeft ?? 'a few'} tries`} left.`;
    case 'INVALID_CREDENTIALS':
      // One answer for an unknown address and a wrong password: the
      // server does not say which, neither does the page.
      return 'That email and password do not match. Check both and try again.';
    case 'EMAIL_NOT_VERIFIED':
      return 'This address is not confirmed yet. Open the link in the email we sent you, or get a new one.';
    case 'UNAUTHENTICATED':
      return 'Your session has ended. Please sign in again.';
    case 'NETWORK':
      return 'We could not reach the server. Check your connection and try again.';
    default:
      return 'Something went wrong on our side. Please try again in a moment.';
  }
}

function seconds(n: number): string {
  return n === 1 ? '1 second' : `${n} seconds`;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The server's rules, checked before sending so mistakes show at once. */
export function checkEmail(email: string): string | null {
  const e = email.trim();
  if (!e) return 'Enter your email address.';
  if (e.length > 254) return 'That email address is too long.';
  if (!/^[^\s@<>()",;:]+@[^\s@<>()",;:[\]]+\.[^\s@<>()",;:[\]]+$/.test(e) || e.endsWith('.')) {
    return 'Enter an email address like name@example.com.';
  }
  return null;
}

export function checkPassword(pw: string): string | null {
  const n = [...pw].length;
  if (n < 8) return 'Use at least 8 characters.';
  if (n > 256) return 'Use at most 256 characters.';
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
  return { score, label: ['Too short', 'Weak', 'Fair', 'Good', 'Strong'][score] };
}
