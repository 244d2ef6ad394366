// Verifies webhook requests with the Standard Webhooks reference library,
// independently of the service's Go code. Reads JSON from stdin:
//   {"secret": "whsec_…", "requests": [{"headers": {…}, "body": "…"}]}
// and exits non-zero, saying which, if any request does not verify.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const input = JSON.parse(readFileSync(0, "utf8"));
const wh = new Webhook(input.secret);
let failed = 0;
input.requests.forEach((r, i) => {
  try {
    wh.verify(r.body, r.headers);
  } catch (e) {
    failed++;
    console.error(`request ${i}: ${e.message}`);
  }
});
if (failed > 0) process.exit(1);
console.log(`verified ${input.requests.length} request(s)`);
