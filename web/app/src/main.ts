import './styles.css';
import { confirmPage } from './confirm';
import { inboxPage } from './inbox';
import * as session from './session';
import { signupPage } from './signup';

function start(): void {
  if (location.pathname === '/verify-email') {
    confirmPage(new URLSearchParams(location.search).get('token') ?? '');
    return;
  }
  const current = session.load();
  if (current) watch(current.email, current.watchToken);
  else signup();
}

function signup(notice?: string, prefill?: string): void {
  document.title = 'Sign up · verifier';
  signupPage((email, watchToken) => {
    session.save({ email, watchToken });
    watch(email, watchToken);
  }, notice, prefill);
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
      signup('That sign-up has expired. Please sign up again.');
    },
  });
}

start();
