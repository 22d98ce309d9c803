// Flipping any single byte of a real document must make it invalid. Every byte of the production document is
// flipped (all bits inverted), plus a dense sample of single-bit flips and of the other documents; certificates that did not change are served from a shared cache, which is
// keyed by their bytes, so a flipped certificate is always parsed and verified afresh.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CertCache, verifyAttestation } from "../../attestation/verify.ts";
import { doc, insideMs, type NitroName } from "./fixtures.ts";

function flipAll(
  name: NitroName,
  opts: { allowDebug: boolean; stride: number; mask: (i: number) => number },
): number {
  const original = doc(name);
  const at = insideMs(name);
  const cache = new CertCache();
  assert.equal(
    verifyAttestation(original, { at, allowDebug: opts.allowDebug, certCache: cache }).valid,
    true,
  );
  const survivors: number[] = [];
  let tried = 0;
  for (let i = 0; i < original.length; i += opts.stride) {
    const d = new Uint8Array(original);
    d[i] = d[i]! ^ opts.mask(i);
    const r = verifyAttestation(d, { at, allowDebug: opts.allowDebug, certCache: cache });
    tried++;
    if (r.valid || r.failures.length === 0) survivors.push(i);
  }
  assert.deepEqual(survivors, [], `flips at these offsets were accepted: ${survivors.join(", ")}`);
  return tried;
}

test("every single-byte flip (xor 0xff) of the production document is refused", () => {
  const tried = flipAll("nondebug", { allowDebug: false, stride: 1, mask: () => 0xff });
  assert.equal(tried, doc("nondebug").length);
});

test("single-bit flips of the production document (every 5th byte, the bit rotating) are refused", () => {
  flipAll("nondebug", { allowDebug: false, stride: 5, mask: (i) => 1 << (i % 8) });
});

test("a dense sample (every 11th byte) of the other real documents is refused when flipped", () => {
  flipAll("debug", { allowDebug: true, stride: 11, mask: () => 0xff });
  flipAll("evervault", { allowDebug: true, stride: 11, mask: () => 0x80 });
});
