// Validates an AsyncAPI document with the AsyncAPI parser (the one the
// AsyncAPI CLI uses) and exits non-zero on any error or warning.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate-asyncapi.mjs FILE");
  process.exit(2);
}
const { document, diagnostics } = await new Parser().parse(readFileSync(file, "utf8"), { source: file });
// Severity 0 is an error, 1 a warning; hints (2, 3) are style advice.
const problems = diagnostics.filter((d) => d.severity <= 1);
for (const d of problems) {
  console.error(`${file}: ${d.path.join(".")}: ${d.message} (${d.code})`);
}
if (!document || problems.length > 0) process.exit(1);
console.log(`${file}: valid AsyncAPI ${document.version()}, ${document.allMessages().length} messages`);
