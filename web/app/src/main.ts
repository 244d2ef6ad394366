import './styles.css';
import { signInFlow } from './account';
import { confirmPage } from './confirm';
import { inboxPage } from './inbox';
import * as session from './session';
import { signupPage } from './signup';

function start(): void {
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
  document.title = 'Sign up · verifier';
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
  document.title = 'Check your inbox · verifier';
  inboxPage(email, watchToken, {
    onStartOver: (prefill) => {
      session.clear();
      signup(undefined, prefill);
    },
    onExpired: () => {
      session.clear();
      signup('That sign-up has expired or was replaced by a newer one. Please sign up again.');
    },
  });
}

start();
