'use strict';
(function () {
  const token = new URLSearchParams(location.search).get('token') || '';
  const out = document.getElementById('result');
  const button = document.getElementById('confirm');
  const messages = {
    INVALID_TOKEN: 'This link is not valid. Use the newest email we sent you.',
    TOKEN_EXPIRED: 'This link has expired. Ask for a new email from the sign-up page.',
    BAD_USER_INPUT: 'This link is incomplete. Open it again from the email.',
  };
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const res = await fetch('/query', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query: 'mutation($t:String!){verifyEmail(token:$t){email status verifiedAt}}', variables: { t: token } }),
      });
      const body = await res.json();
      if (body.errors && body.errors.length) {
        const code = body.errors[0].extensions && body.errors[0].extensions.code;
        out.textContent = messages[code] || 'Something went wrong. Try again in a moment.';
        button.disabled = false;
        return;
      }
      out.textContent = body.data.verifyEmail.email + ' is verified. You can close this page.';
    } catch (e) {
      out.textContent = 'Could not reach the server. Try again.';
      button.disabled = false;
    }
  });
})();
