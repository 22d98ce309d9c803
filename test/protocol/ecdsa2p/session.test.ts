// Session ids (protocol/ecdsa2p/session.ts): their length rule, and that what a key or session keeps is its own
// copy, never a view into the message it arrived in.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  checkSessionId,
  SESSION_ID_MAX_BYTES,
  SESSION_ID_MIN_BYTES,
} from "../../../protocol/ecdsa2p/session.ts";
import { ProtocolError } from "../../../protocol/errors.ts";

const refused = (e: unknown) => e instanceof ProtocolError && e.code === "SESSION_ID_LENGTH";

test("session ids of 16 to 32 bytes are taken; shorter, longer or absent ones are refused", () => {
  for (const n of [SESSION_ID_MIN_BYTES, 24, SESSION_ID_MAX_BYTES])
    assert.equal(checkSessionId(new Uint8Array(n).fill(7)).length, n);
  for (const bad of [undefined, new Uint8Array(0), new Uint8Array(15), new Uint8Array(33)])
    assert.throws(() => checkSessionId(bad), refused);
});

test("the id kept is a copy in a buffer of its own, not a view that pins the message or a pool slab", () => {
  const slab = Buffer.from("a".repeat(100)); // a small Buffer.from is a view into Node's 8 KB pool
  const view = slab.subarray(10, 26);
  assert.ok(
    view.buffer.byteLength >= 8192,
    `the input is a view of a pool slab (${view.buffer.byteLength} bytes)`,
  );
  const kept = checkSessionId(view);
  assert.deepEqual(Buffer.from(kept), Buffer.from(view));
  assert.equal(kept.buffer.byteLength, 16, "the kept id holds only its 16 bytes");
  slab.fill(0);
  assert.equal(kept[0], 0x61, "changing the message later does not change the kept id");
});
