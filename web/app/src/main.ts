import './styles.css';
import { signInFlow } from './account';
import { confirmPage } from './confirm';
import { inboxPage } from './inbox';
import * as session from './session';
import { signupPage } from './signup';
import { h } from './dom';
import { lang, load, switchLanguage, t, type Lang } from './i18n';

function start(): void {
  document.documentElement.lang = lang;
  document.querySelector('.skip')!.textContent = t.skip;
  languageSwitcher();
  if (location.pathname === '/verify-email') {
    confirmPage(new URLSearchParams(location.search).get('token') ?? '');
    return;
  }
  if (location.pathname === '/sign-in') {
    signInFlow();
    return;
  }
  const current = session.load();
  if (current) watch(current.email, current.watchToken);
  else signup();
}

// An integrating app sends people to /?redirect_to=<its URL> to have them
// back, with a receipt, once verified. The server checks the URL's origin
// against PUBLIC_URL's and REDIRECT_ALLOWLIST when they register.
const redirectTo = new URLSearchParams(location.search).get('redirect_to') ?? undefined;

function signup(notice?: string, prefill?: string): void {
  document.title = t.titleSignup;
  signupPage({
    onRegistered: (email, watchToken) => {
      session.save({ email, watchToken });
      watch(email, watchToken);
    },
    notice,
    prefill,
    redirectTo,
  });
}

function watch(email: string, watchToken: string): void {
  document.title = t.titleInbox;
  inboxPage(email, watchToken, {
    onStartOver: (prefill) => {
      session.clear();
      signup(undefined, prefill);
    },
    onExpired: () => {
      session.clear();
      signup(t.expired);
    },
  });
}

/** A link to the other language, below the card: every screen keeps it.
 * It reloads the address the tab opened with, which for the confirm page
 * still holds the token the page takes out of the address bar. */
function languageSwitcher(): void {
  const entry = location.href;
  const other: Lang = lang === 'en' ? 'de' : 'en';
  const button = h('button', { type: 'button', class: 'link', lang: other, id: 'language' }, t.switchTo);
  button.addEventListener('click', () => switchLanguage(other, entry));
  document.getElementById('app')!.after(h('nav', { class: 'language', 'aria-label': lang === 'en' ? 'Language' : 'Sprache' }, button));
}

void load().then(start);
