// The example operations the playground opens with, one tab each, in the
// order of the flow: register, watch, confirm by link or by code, sign in.

const tab = (query: string, variables: Record<string, unknown>) => ({
  query: query.trim() + '\n',
  variables: JSON.stringify(variables, null, 2),
});

export const examples = [
  tab(
    `
# Registers an address and sends its verification email. Keep the
# watchToken: it lets you watch this registration. With no SMTP_URL the
# email is in the dev outbox at /dev/mail.
mutation Register($input: RegisterInput!) {
  register(input: $input) {
    watchToken
    status
  }
}`,
    { input: { email: 'ada@example.com', password: 'correct horse battery' } },
  ),
  tab(
    `
# Watches the registration live (over a websocket): UNVERIFIED now,
# VERIFIED once confirmed, with the email's delivery as it changes.
subscription VerificationStatus($watchToken: String!) {
  verificationStatus(watchToken: $watchToken, withDelivery: true) {
    status
    at
    delivery {
      state
      attempts
      reason
    }
    receipt
  }
}`,
    { watchToken: 'paste the watchToken from Register' },
  ),
  tab(
    `
# Confirms the address with the token from the email's link.
mutation VerifyEmail($token: String!) {
  verifyEmail(token: $token) {
    email
    status
    verifiedAt
    alreadyVerified
    receipt
  }
}`,
    { token: 'paste the token from the link' },
  ),
  tab(
    `
# Confirms the address with the 6-digit code from the email instead.
mutation VerifyEmailWithCode($watchToken: String!, $code: String!) {
  verifyEmailWithCode(watchToken: $watchToken, code: $code) {
    email
    status
    verifiedAt
    receipt
  }
}`,
    { watchToken: 'paste the watchToken from Register', code: '123456' },
  ),
  tab(
    `
# Signs in to a verified address.
mutation SignIn($email: String!, $password: String!) {
  signIn(email: $email, password: $password) {
    token
    expiresAt
  }
}`,
    { email: 'ada@example.com', password: 'correct horse battery' },
  ),
];
