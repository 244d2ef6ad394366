// Every word the app shows, in English here and in German in de.ts. The
// language is the one picked with the switcher, else the first of the
// browser's preferred languages we have (navigator.languages); register()
// sends it as `locale`, so the emails speak the page's language. German
// is a chunk of its own, fetched only by German pages: English pages load
// no byte of it.

export type Lang = 'en' | 'de';

type Parts = (Node | string)[];

const en = {
  skip: 'Skip to content',
  switchTo: 'Deutsch',
  titleSignup: 'Sign up · verifier',
  titleInbox: 'Check your inbox · verifier',
  titleSignIn: 'Sign in · verifier',
  titleSignedIn: 'Signed in · verifier',
  titleChange: 'Change address · verifier',
  titleConfirmChange: 'Confirm your new address · verifier',
  titleConfirm: 'Confirm your email · verifier',
  expired: 'That sign-up has expired or was replaced by a newer one. Please sign up again.',

  email: 'Email',
  password: 'Password',
  show: 'Show',
  hide: 'Hide',
  showPassword: 'Show password',
  hidePassword: 'Hide password',
  signIn: 'Sign in',
  // A wait of more than 90 s in minutes, rounded up: a sign-in locked
  // for 2615 s reads "44 min", not a number of seconds to work out.
  tryAgainIn: (n: number) => `Try again in ${n <= 90 ? `${n} s` : `${Math.ceil(n / 60)} min`}`,
  resendIn: (again: string, n: number) => `${again} in ${n <= 90 ? `${n} s` : `${Math.ceil(n / 60)} min`}`,
  sendNewLink: 'Send me a new link',
  sendAgain: 'Send again',
  cancel: 'Cancel',

  // Sign-up
  atLeast8: 'At least 8 characters.',
  strengthIs: (label: string) => `Strength: ${label}.`,
  strengths: ['Too short', 'Weak', 'Fair', 'Good', 'Strong'],
  createAccount: 'Create account',
  creatingAccount: 'Creating account…',
  badRedirect: (link: Node): Parts => ['The page that sent you here asks to return to a site we may not send you to. ', link, '.'],
  signUpWithoutIt: 'Sign up without it',
  createYourAccount: 'Create your account',
  signupLead: 'We will email you a link and a code to confirm your address.',
  haveAccount: 'Already have an account? ',

  // Waiting for the confirmation
  waiting: 'Waiting for you to confirm…',
  connection: { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' },
  connectionLost: 'Connection lost. Reconnecting…',
  connectionBack: 'Connected again.',
  resendEmail: 'Resend email',
  resend: 'Resend',
  resentLink: 'We sent a new link. Any earlier link still works.',
  startOver: 'Wrong address? Start over',
  checkInbox: 'Check your inbox',
  inboxLead: (addr: Node): Parts => ['We sent a link and a code to ', addr,
    '. Open the link on this or any other device and press “Confirm my email”, or type the code here. This page updates by itself.'],
  fixAddress: 'Fix the address',
  delivery: {
    QUEUED: 'Your email is on its way to your mail server…',
    SENT: 'Email sent to your mail server.',
    DEFERRED: 'Email delayed, retrying. Your mail server asked us to try again later.',
    FAILED: 'Email refused: check the address.',
  },
  details: (reason: string) => `Details: ${reason}`,
  notDelivered: 'We could not deliver the link.',
  refusedLead: (addr: Node): Parts => ['Your mail server refused our email to ', addr, '. Check the address for a typo and sign up again.'],
  verifiedStatus: 'Your email is verified.',
  allSet: 'You are all set',
  confirmedContinue: ' is confirmed. Continue where you left off.',
  confirmedSignIn: ' is confirmed. You can sign in now.',
  typeCode: 'Or type the 6-digit code from the email',
  codeDead: 'Use the link in the email, or send a new email.',
  // After a resend brought a dead code's field back: the new email has a
  // new code if the old one expired, the link only if its tries were spent.
  codeRevived: 'Enter the code from the newest email, or use its link.',

  // The code field
  verifyCode: 'Verify code',
  checking: 'Checking…',
  enterDigits: (n: number) => `Enter the ${n} digits of the code.`,

  // The confirm page
  confirmMyEmail: 'Confirm my email',
  confirming: 'Confirming…',
  alreadyVerified: 'Already verified',
  confirmedEarlier: ' was confirmed earlier. Nothing else to do.',
  emailVerified: 'Email verified',
  confirmedHere: ' is confirmed. If the sign-up page is still open, on this or another device, it has updated.',
  linkExpired: 'This link has expired',
  linkExpiredLead: 'Links work for a limited time. Get a fresh one:',
  linkInvalid: 'This link is not valid',
  linkInvalidLead: (link: Node): Parts => ['It may be incomplete or from an old email. Open the link in the newest email we sent you, or ', link, '.'],
  linkNoToken: (link: Node): Parts => ['It has no token. Open the link in the newest email we sent you, or ', link, '.'],
  signUpAgain: 'sign up again',
  tryAgain: 'Try again',
  confirmYourEmail: 'Confirm your email',
  confirmLead: 'Press the button to confirm this address. Opening the link alone changes nothing.',
  yourEmail: 'Your email',
  resendSentMaybe: 'If that address is waiting for confirmation, a new link is on its way. Check your inbox.',
  recentlySent: 'An email was sent a moment ago. You can ask for another when the countdown ends.',

  // After confirming
  continue: 'Continue',
  takesBack: (host: Node): Parts => ['Takes you back to ', host, '.'],

  // Sign-in and the account
  signInSentLink: 'We sent a new link. Open it, then sign in here.',
  enterPassword: 'Enter your password.',
  signingIn: 'Signing in…',
  signInLead: 'With the address you confirmed and your password.',
  noAccount: 'No account yet? ',
  createOne: 'Create one',
  changeAddress: 'Change address',
  signOut: 'Sign out',
  signedOut: 'You are signed out.',
  signedIn: 'You are signed in',
  yourAddress: 'Your address: ',
  sendLinkAndCode: 'Send link and code',
  newEmail: 'New email address',
  sameAddress: 'That is your address already.',
  sending: 'Sending…',
  changeYourAddress: 'Change your address',
  changeLead: (addr: Node): Parts => ['Your address now: ', addr,
    '. We will send a link and a code to the new address; nothing changes until you confirm it there.'],
  differentAddress: 'Use a different address',
  codeFromThatEmail: 'The 6-digit code from that email',
  addressNow: (email: string) => `Your address is now ${email}.`,
  changeCodeDead: (pending: string) => `Use the link in the email to ${pending}, or start the change again.`,
  confirmNewAddress: 'Confirm your new address',
  confirmChangeLead: (addr: Node): Parts => ['We sent a link and a code to ', addr, '; nothing changes until you confirm.'],

  // Checks and errors (messages.ts)
  enterEmail: 'Enter your email address.',
  emailTooLong: 'That email address is too long.',
  // The part before the @ over SMTP's 64 bytes; a letter outside ASCII
  // takes 2 to 4 of them.
  localTooLong: (ascii: boolean) =>
    `The part before the @ can be at most 64 characters${ascii ? '' : ', and letters like é count as 2 or more'}.`,
  emailLike: 'Enter an email address like name@example.com.',
  // A likely typo of a common mail domain, and a button that puts the
  // address suggested in the field.
  didYouMean: (addr: Node, use: Node): Parts => ['Did you mean ', addr, '? ', use],
  useIt: 'Use it',
  pwShort: 'Use at least 8 characters.',
  pwLong: 'Use at most 256 characters.',
  // The server's own words, for the field they name.
  badInput: (serverMessage: string) => serverMessage.charAt(0).toUpperCase() + serverMessage.slice(1) + '.',
  invalidToken: 'This link is not valid. Use the link in the newest email we sent you.',
  tokenExpired: 'This link has expired.',
  rateLimited: (s: number) => `Please wait ${s <= 90 ? (s === 1 ? '1 second' : `${s} seconds`) : `${Math.ceil(s / 60)} minutes`} before trying again.`,
  codeNoLonger: 'This code no longer works.',
  codeWrong: (left?: number) => `That code is not right — ${left === 1 ? '1 try' : `${left ?? 'a few'} tries`} left.`,
  invalidCredentials: 'That email and password do not match. Check both and try again.',
  notVerified: 'This address is not confirmed yet. Open the link in the email we sent you, or get a new one.',
  unauthenticated: 'Your session has ended. Please sign in again.',
  network: 'We could not reach the server. Check your connection and try again.',
  internal: 'Something went wrong on our side. Please try again in a moment.',
};

export type Messages = typeof en;


const KEY = 'verifier.lang';
const langs: Lang[] = ['en', 'de'];

/** The language picked with the switcher, else the first of the browser's
 * preferred languages we have (fr, de-AT, en → German), else English. */
function pick(): Lang {
  let saved: string | null = null;
  try {
    saved = localStorage.getItem(KEY);
  } catch {
    // Storage blocked: the browser's languages decide.
  }
  for (const tag of saved ? [saved] : navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split('-')[0];
    if (langs.includes(base as Lang)) return base as Lang;
  }
  return 'en';
}

/** The page's language, sent as `locale` with a registration. */
export let lang: Lang = pick();

/** The page's words; German ones once load() has resolved. */
export let t: Messages = en;

/** Fetches the page's words if they are not English; if that fails (the
 * network went), the page is English rather than blank. */
export async function load(): Promise<void> {
  if (lang === 'en') return;
  try {
    t = (await import('./de')).de;
  } catch {
    lang = 'en';
  }
}

/** Keeps `to` as the language of this browser and loads `href` again in
 * it: every screen is drawn from scratch, and what a tab was doing (a
 * registration being watched, a sign-in) survives a reload already. */
export function switchLanguage(to: Lang, href: string): void {
  try {
    localStorage.setItem(KEY, to);
  } catch {
    // Storage blocked: the browser's languages keep deciding.
  }
  location.replace(href);
}
