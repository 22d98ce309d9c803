import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAmount } from "../../client/cli.ts";
import { progressPrinter } from "../../client/progress.ts";

test("amounts in satoshis or bitcoin", () => {
  assert.equal(parseAmount("100000"), 100_000n);
  assert.equal(parseAmount("2500 sat"), 2_500n);
  assert.equal(parseAmount("0.001btc"), 100_000n);
  assert.equal(parseAmount("1.5 BTC"), 150_000_000n);
  assert.equal(parseAmount("0.00000001btc"), 1n);
  for (const bad of ["", "-5", "1.5", "0.000000001btc", "ten", "1e5"])
    assert.throws(() => parseAmount(bad), /not an amount/);
});

test("progress: JSON lines with --json, one line per change without a terminal, a bar in place on one", () => {
  const lines: string[] = [];
  const json = progressPrinter({ write: (s) => lines.push(s), tty: false, json: true });
  json.onProgress("confirmations", { have: 1, need: 3 });
  assert.deepEqual(JSON.parse(lines[0]!), { event: "progress", step: "confirmations", have: 1, need: 3 });

  const plain: string[] = [];
  const p = progressPrinter({ write: (s) => plain.push(s), tty: false, json: false });
  p.onProgress("confirmations", { have: 0, need: 2 });
  p.onProgress("confirmations", { have: 0, need: 2 });
  p.onProgress("confirmations", { have: 2, need: 2 });
  p.onProgress("keygen");
  p.onProgress("an-event-nobody-describes");
  assert.equal(plain.length, 3, plain.join(""));
  assert.match(plain[1]!, /\[#{24}\] 2\/2/);
  assert.match(plain[2]!, /key generation/);

  const tty: string[] = [];
  const t = progressPrinter({ write: (s) => tty.push(s), tty: true, json: false });
  t.onProgress("wait-blocks", { tip: 100, left: 10 });
  t.onProgress("wait-blocks", { tip: 105, left: 5 });
  t.end();
  assert.ok(tty[1]!.startsWith("\r\u001b[K"), "redrawn in place");
  assert.match(tty[1]!, /\[#{12}-{12}\] 5 left/);
  assert.equal(tty[2], "\n");
});
