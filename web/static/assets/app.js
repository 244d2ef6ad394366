'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  let email = '';

  async function gql(query, variables) {
    const res = await fetch('/query', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    const body = await res.json();
    if (body.errors && body.errors.length) {
      const e = body.errors[0];
      const err = new Error(e.message);
      err.code = e.extensions && e.extensions.code;
      err.retryAfter = e.extensions && e.extensions.retryAfterSeconds;
      throw err;
    }
    return body.data;
  }

  // Follows one registration over graphql-transport-ws.
  function watch(watchToken) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(proto + '//' + location.host + '/query', 'graphql-transport-ws');
    ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init' }));
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === 'connection_ack') {
        ws.send(JSON.stringify({
          id: '1', type: 'subscribe',
          payload: { query: 'subscription($t:String!){verificationStatus(watchToken:$t){status at}}', variables: { t: watchToken } },
        }));
      } else if (msg.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong' }));
      } else if (msg.type === 'next' && msg.payload.data) {
        $('status').textContent = msg.payload.data.verificationStatus.status;
      } else if (msg.type === 'complete') {
        ws.close(1000);
      }
    };
  }

  $('signup').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('error').textContent = '';
    email = $('email').value;
    try {
      const d = await gql('mutation($i:RegisterInput!){register(input:$i){watchToken status}}',
        { i: { email, password: $('password').value } });
      $('signup').hidden = true;
      $('inbox').hidden = false;
      $('sent-to').textContent = email;
      watch(d.register.watchToken);
    } catch (err) {
      $('error').textContent = err.message;
    }
  });

  $('resend').addEventListener('click', async () => {
    try {
      await gql('mutation($e:String!){resendVerificationEmail(email:$e)}', { e: email });
      $('resend-note').textContent = 'Sent. Check your inbox.';
    } catch (err) {
      $('resend-note').textContent = err.code === 'RATE_LIMITED'
        ? 'Please wait ' + err.retryAfter + ' seconds before asking again.' : err.message;
    }
  });
})();
