// Talks to the verifier API: queries and mutations over fetch, the status
// subscription over graphql-transport-ws with the graphql-ws client.
import { createClient, type Client } from 'graphql-ws';

export type Status = 'UNVERIFIED' | 'VERIFIED';

export type DeliveryState = 'QUEUED' | 'SENT' | 'DEFERRED' | 'FAILED';

/** What happened so far to the registration's latest email. */
export interface Delivery {
  state: DeliveryState;
  at: string;
  attempts: number;
  /** For DEFERRED and FAILED: the mail server's reply, in plain words. */
  reason?: string | null;
}

/** An error from the API, with the contract's extensions.code. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly retryAfterSeconds?: number,
    /** For INVALID_CODE: wrong tries left before the code dies (0: dead). */
    readonly attemptsLeft?: number,
  ) {
    super(message);
  }
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string; retryAfterSeconds?: number; attemptsLeft?: number };
}

function toApiError(e: GraphQLError): ApiError {
  const x = e.extensions;
  return new ApiError(e.message, x?.code ?? 'INTERNAL', x?.retryAfterSeconds, x?.attemptsLeft);
}

/** Any thrown value as an ApiError, for the screens' catch blocks. */
export function asApiError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(String(err), 'INTERNAL');
}

/** Sends a query or mutation; `bearer` is a signIn token, for the calls
 * that act on the signed-in user. */
async function request<T>(query: string, variables: Record<string, unknown>, bearer?: string): Promise<T> {
  let res: Response;
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  try {
    res = await fetch('/query', { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  } catch {
    throw new ApiError('The server could not be reached.', 'NETWORK');
  }
  let body: { data?: T; errors?: GraphQLError[] };
  try {
    body = await res.json();
  } catch {
    throw new ApiError('The server sent an unexpected answer.', 'INTERNAL');
  }
  if (body.errors?.length) throw toApiError(body.errors[0]);
  if (!body.data) throw new ApiError('The server sent an unexpected answer.', 'INTERNAL');
  return body.data;
}

/** Registers; `locale` is the language of its emails (the page's);
 * `redirectTo` is where the person goes once verified (the server checks
 * it against its allowed origins). */
export async function register(email: string, password: string, locale: string, redirectTo?: string): Promise<string> {
  const input: Record<string, string> = { email, password, locale };
  if (redirectTo) input.redirectTo = redirectTo;
  const d = await request<{ register: { watchToken: string } }>(
    'mutation Register($input: RegisterInput!) { register(input: $input) { watchToken status } }',
    { input },
  );
  return d.register.watchToken;
}

export interface Verified {
  email: string;
  verifiedAt: string;
  alreadyVerified: boolean;
  /** Signed proof of the verification, for the app behind redirectTo. */
  receipt: string;
  redirectTo?: string | null;
}

const verifiedFields = '{ email status verifiedAt alreadyVerified receipt redirectTo }';

export async function verifyEmail(token: string): Promise<Verified> {
  const d = await request<{ verifyEmail: Verified }>(
    `mutation Verify($token: String!) { verifyEmail(token: $token) ${verifiedFields} }`,
    { token },
  );
  return d.verifyEmail;
}

/** Confirms the registration behind watchToken with the code from its email. */
export async function verifyEmailWithCode(watchToken: string, code: string): Promise<Verified> {
  const d = await request<{ verifyEmailWithCode: Verified }>(
    `mutation VerifyCode($w: String!, $c: String!) { verifyEmailWithCode(watchToken: $w, code: $c) ${verifiedFields} }`,
    { w: watchToken, c: code },
  );
  return d.verifyEmailWithCode;
}

export interface SignedIn {
  token: string;
  expiresAt: string;
}

export async function signIn(email: string, password: string): Promise<SignedIn> {
  const d = await request<{ signIn: SignedIn }>(
    'mutation SignIn($e: String!, $p: String!) { signIn(email: $e, password: $p) { token expiresAt } }',
    { e: email, p: password },
  );
  return d.signIn;
}

/** Mails a link and a code to newEmail; nothing changes until it is confirmed. */
export async function changeEmail(token: string, newEmail: string): Promise<void> {
  await request('mutation Change($e: String!) { changeEmail(newEmail: $e) }', { e: newEmail }, token);
}

/** Confirms the pending address change with the code mailed to the new address. */
export async function confirmEmailChange(token: string, code: string): Promise<Verified> {
  const d = await request<{ confirmEmailChange: Verified }>(
    `mutation ConfirmChange($c: String!) { confirmEmailChange(code: $c) ${verifiedFields} }`,
    { c: code },
    token,
  );
  return d.confirmEmailChange;
}

export async function resend(email: string): Promise<void> {
  await request('mutation Resend($email: String!) { resendVerificationEmail(email: $email) }', { email });
}

interface Event {
  status: Status;
  at: string;
  delivery?: Delivery | null;
  receipt?: string | null;
  redirectTo?: string | null;
}

export type Connection = 'connecting' | 'live' | 'reconnecting';

export interface Watch {
  stop(): void;
}

/**
 * Follows a registration's status and its email's delivery. The client
 * reconnects by itself, for ever, with backoff; after a reconnect the server
 * sends the current status (and delivery) first, so nothing is missed while
 * the socket was down.
 */
export function watchStatus(
  watchToken: string,
  on: {
    /** VERIFIED comes with a receipt and the registration's redirectTo. */
    status(s: Status, receipt?: string | null, redirectTo?: string | null): void;
    /** Each delivery change of the registration's latest email. */
    delivery(d: Delivery): void;
    connection(c: Connection): void;
    error(e: ApiError): void;
  },
): Watch {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/query`;
  let done = false;
  let everConnected = false;
  const client: Client = createClient({
    url,
    lazy: false,
    retryAttempts: Infinity,
    shouldRetry: () => !done,
    // The library's own wait doubles for ever: after five minutes without
    // network or server the next try could come eight minutes after they
    // were back, the page saying "Reconnecting…" all the while and missing
    // a confirmation made meanwhile. It doubles up to 8 s here, with the
    // library's random 0.3–3 s on top so that a restarted server is not met
    // by every page at once, and ends at once when the browser says the
    // network is back.
    retryWait: (retries) => new Promise<void>((resolve) => {
      const wake = () => {
        window.clearTimeout(timer);
        window.removeEventListener('online', wake);
        resolve();
      };
      const timer = window.setTimeout(wake, Math.min(2 ** retries, 8) * 1000 + 300 + Math.random() * 2700);
      window.addEventListener('online', wake);
    }),
    keepAlive: 20_000,
    on: {
      connecting: () => on.connection(everConnected ? 'reconnecting' : 'connecting'),
      connected: () => {
        everConnected = true;
        on.connection('live');
        subscribe();
      },
      closed: () => {
        if (!done && everConnected) on.connection('reconnecting');
      },
    },
  });

  let unsubscribe: (() => void) | undefined;
  // Subscribes afresh on every connection: the server's first event is the
  // current status, which covers any change made while disconnected.
  function subscribe() {
    unsubscribe?.();
    unsubscribe = client.subscribe<{ verificationStatus: Event }>(
      {
        query:
          'subscription Watch($w: String!) { verificationStatus(watchToken: $w, withDelivery: true) { status at receipt redirectTo delivery { state at attempts reason } } }',
        variables: { w: watchToken },
      },
      {
        next: (r) => {
          if (r.errors?.length) {
            on.error(toApiError(r.errors[0] as GraphQLError));
            return;
          }
          if (!r.data) return;
          const { status, delivery, receipt, redirectTo } = r.data.verificationStatus;
          if (delivery) on.delivery(delivery);
          on.status(status, receipt, redirectTo);
        },
        error: () => {
          // A dropped socket: the client reconnects and `connected` subscribes again.
        },
        complete: () => {},
      },
    );
  }

  return {
    stop() {
      done = true;
      unsubscribe?.();
      void client.dispose();
    },
  };
}
