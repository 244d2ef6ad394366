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
  ) {
    super(message);
  }
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string; retryAfterSeconds?: number };
}

function toApiError(e: GraphQLError): ApiError {
  return new ApiError(e.message, e.extensions?.code ?? 'INTERNAL', e.extensions?.retryAfterSeconds);
}

async function request<T>(query: string, variables: Record<string, unknown>): Promise<T> {
  let res: Response;
  try {
    res = await fetch('/query', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
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

export async function register(email: string, password: string): Promise<string> {
  const d = await request<{ register: { watchToken: string } }>(
    'mutation Register($input: RegisterInput!) { register(input: $input) { watchToken status } }',
    { input: { email, password } },
  );
  return d.register.watchToken;
}

export interface Verified {
  email: string;
  verifiedAt: string;
  alreadyVerified: boolean;
}

export async function verifyEmail(token: string): Promise<Verified> {
  const d = await request<{ verifyEmail: Verified }>(
    'mutation Verify($token: String!) { verifyEmail(token: $token) { email status verifiedAt alreadyVerified } }',
    { token },
  );
  return d.verifyEmail;
}

export async function resend(email: string): Promise<void> {
  await request('mutation Resend($email: String!) { resendVerificationEmail(email: $email) }', { email });
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
    status(s: Status): void;
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
    unsubscribe = client.subscribe<{ verificationStatus: { status: Status; at: string; delivery?: Delivery | null } }>(
      {
        query:
          'subscription Watch($w: String!) { verificationStatus(watchToken: $w, withDelivery: true) { status at delivery { state at attempts reason } } }',
        variables: { w: watchToken },
      },
      {
        next: (r) => {
          if (r.errors?.length) {
            on.error(toApiError(r.errors[0] as GraphQLError));
            return;
          }
          if (!r.data) return;
          const { status, delivery } = r.data.verificationStatus;
          if (delivery) on.delivery(delivery);
          on.status(status);
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
