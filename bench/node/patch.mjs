// Times what adding the web search tool costs in Node: JSON.parse, push onto
// tools, JSON.stringify. Prints one JSON line like bench/cmd/patchbench.
//
//   node bench/node/patch.mjs FILE NAME [SECONDS]
import { readFileSync } from "node:fs";

const [file, name, seconds = "1"] = process.argv.slice(2);
if (!file || !name) {
  console.error("usage: node patch.mjs FILE NAME [SECONDS]");
  process.exit(2);
}
const body = readFileSync(file, "utf8");
const tool = { type: "openrouter:web_search", parameters: { engine: "auto", max_results: 8 } };

function patch(text) {
  const req = JSON.parse(text);
  (req.tools ??= []).push(tool);
  return JSON.stringify(req);
}

// Warm up so the JIT has compiled patch before timing starts.
const warmUntil = process.hrtime.bigint() + 200_000_000n;
while (process.hrtime.bigint() < warmUntil) patch(body);

const budget = BigInt(Math.round(Number(seconds) * 1e9));
let iterations = 0;
let out = 0;
const start = process.hrtime.bigint();
let elapsed = 0n;
while (elapsed < budget || iterations < 10) {
  out += patch(body).length;
  iterations++;
  elapsed = process.hrtime.bigint() - start;
}
if (out === 0) throw new Error("nothing produced");
console.log(JSON.stringify({
  kind: "patch",
  impl: "node",
  size: name,
  bytes: Buffer.byteLength(body),
  ns_per_op: Number(elapsed) / iterations,
  iterations,
  node: process.version,
}));
