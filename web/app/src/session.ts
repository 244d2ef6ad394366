// The registration being watched survives a reload of the tab (F5), not the
// tab itself: sessionStorage is per tab, so another tab starts fresh.

const KEY = 'verifier.registration';

export interface Registration {
  email: string;
  watchToken: string;
}

/** The record under `key` if it has the string fields named, else null. */
function read<T>(key: string, ...fields: (keyof T & string)[]): T | null {
  try {
    const v = JSON.parse(sessionStorage.getItem(key) ?? 'null');
    return v && fields.every((f) => typeof v[f] === 'string') ? v : null;
  } catch {
    return null;
  }
}

export function load(): Registration | null {
  return read<Registration>(KEY, 'email', 'watchToken');
}

export function save(r: Registration): void {
  sessionStorage.setItem(KEY, JSON.stringify(r));
}

export function clear(): void {
  sessionStorage.removeItem(KEY);
}

// The sign-in token lives in sessionStorage too, never localStorage: it is a
// bearer credential, and sessionStorage keeps it to this tab and drops it
// when the tab closes (a shared computer, a forgotten window), while still
// surviving a reload. localStorage would keep it on disk for every tab
// until someone signs out. Script on the page could read either; the CSP
// lets only our own script run.
const SIGNED_IN = 'verifier.signedIn';

export interface SignedIn {
  token: string;
  /** RFC 3339; the token is dropped once it has passed. */
  expiresAt: string;
  /** The address shown: the token's email claim, then the new address
   * once a change is confirmed (the token keeps the old claim). */
  email: string;
  /** An address change waiting for its code, so a reload keeps the screen. */
  pending?: string;
}

/** The sign-in of this tab, or null (none, or its token expired). */
export function loadSignedIn(): SignedIn | null {
  const v = read<SignedIn>(SIGNED_IN, 'token', 'email', 'expiresAt');
  if (v && Date.parse(v.expiresAt) > Date.now()) return v;
  clearSignedIn();
  return null;
}

export function saveSignedIn(s: SignedIn): void {
  sessionStorage.setItem(SIGNED_IN, JSON.stringify(s));
}

export function clearSignedIn(): void {
  sessionStorage.removeItem(SIGNED_IN);
}

/**
 * The email claim of a JWT, for display only: the payload is decoded, not
 * verified (the server checks the signature on every call that needs it).
 * A few lines rather than a JOSE library in the bundle.
 */
export function emailClaim(jwt: string): string {
  try {
    const b64 = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const email = JSON.parse(new TextDecoder().decode(bytes)).email;
    return typeof email === 'string' ? email : '';
  } catch {
    return '';
  }
}
