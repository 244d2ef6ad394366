// The registration being watched survives a reload of the tab (F5), not the
// tab itself: sessionStorage is per tab, so another tab starts fresh.

const KEY = 'verifier.registration';

export interface Registration {
  email: string;
  watchToken: string;
}

export function load(): Registration | null {
  try {
    const v = JSON.parse(sessionStorage.getItem(KEY) ?? 'null');
    return v && typeof v.email === 'string' && typeof v.watchToken === 'string' ? v : null;
  } catch {
    return null;
  }
}

export function save(r: Registration): void {
  sessionStorage.setItem(KEY, JSON.stringify(r));
}

export function clear(): void {
  sessionStorage.removeItem(KEY);
}
