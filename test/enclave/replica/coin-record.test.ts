// The replicated coin record (enclave/replica/coin-record.ts): a member that decodes it holds the same coin, the
// secrets travel only inside the one buffer (so zeroing it after apply leaves no copy), and malformed records
// are refused by name.
import assert from "node:assert/strict";
import { test } from "node:test";
import { COIN_RECORD_VERSION, decodeCoin, encodeCoin } from "../../../enclave/replica/coin-record.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import { fullCoin, view } from "./coins.ts";

test("a decoded record is the same coin, every field; answers and the registry's id are not carried", () => {
  const c = fullCoin();
  const back = decodeCoin(encodeCoin(c));
  assert.deepEqual(view(back), view(c), "the decoded coin differs from the encoded one");
  assert.equal(back.answers.size, 0, "remembered answers are leader-local and must not be carried");
  assert.equal(back.signSessions.size, 0, "signing sessions are leader-local and must not be carried");
});

test("a keyed coin (no outpoint, pending or withdrawal yet) round-trips", () => {
  const c = fullCoin();
  Object.assign(c, {
    stage: "keyed",
    outpoint: undefined,
    amountSat: undefined,
    initialLock: undefined,
    kickoff: undefined,
    backupKey: undefined,
    pending: undefined,
    lastKeyUpdate: undefined,
    withdraw: undefined,
  });
  assert.deepEqual(view(decodeCoin(encodeCoin(c))), view(c), "a keyed coin did not round-trip");
});

test("the secrets travel in the record's one off-heap buffer, and the decoded coin holds copies of its own", () => {
  const c = fullCoin();
  const secrets = [
    Buffer.from(c.key!.share),
    c.pending!.x1.use((b) => Buffer.from(b)),
    c.pending!.transferKeys[0]!.secret.use((b) => Buffer.from(b)),
  ];
  const record = encodeCoin(c);
  for (const s of secrets) assert.ok(record.includes(s), "the record must carry each secret it replicates");
  assert.equal(record.byteOffset, 0, "the record must be a buffer of its own, not a slice of a pool slab");
  assert.equal(
    record.buffer.byteLength,
    record.length,
    "the record's backing store must be exactly the record",
  );
  const decoded = decodeCoin(record);
  record.fill(0);
  assert.equal(decoded.key!.share.length, 32, "the decoded share must be a copy, not a view of the record");
  assert.ok(
    Buffer.from(decoded.key!.share).equals(secrets[0]!),
    "zeroing the record must not touch the copy",
  );
});

test("a coin in keygen, or with its share erased, is not encoded", () => {
  const c = fullCoin();
  assert.throws(() => encodeCoin({ ...c, stage: "keygen" }), { code: "RECORD_STAGE" } as object);
  assert.throws(() => encodeCoin({ ...c, key: { ...c.key!, wiped: true } }), {
    code: "RECORD_KEY",
  } as object);
});

test("a truncated, extended, re-versioned or mangled record is refused with RECORD_* codes, never a crash", () => {
  const record = encodeCoin(fullCoin());
  for (let n = 0; n < record.length; n += 7) {
    assert.throws(
      () => decodeCoin(record.subarray(0, n)),
      (e: unknown) => e instanceof ProtocolError && e.code === "RECORD_PARSE",
      `a record cut to ${n} bytes was not refused as RECORD_PARSE`,
    );
  }
  assert.throws(() => decodeCoin(Buffer.concat([record, Buffer.of(0)])), { code: "RECORD_PARSE" } as object);
  const v2 = Buffer.from(record);
  v2[0] = COIN_RECORD_VERSION + 1;
  assert.throws(() => decodeCoin(v2), { code: "RECORD_VERSION" } as object);
  const badStage = Buffer.from(record);
  badStage[1] = 9;
  assert.throws(() => decodeCoin(badStage), { code: "RECORD_PARSE" } as object);
  // Every single-byte change either is refused by a ProtocolError or decodes: nothing else is thrown.
  for (let i = 0; i < record.length; i++) {
    const m = Buffer.from(record);
    m[i] ^= 0xff;
    try {
      decodeCoin(m);
    } catch (e) {
      assert.ok(
        e instanceof ProtocolError,
        `flipping byte ${i} threw ${(e as Error).name}, not a ProtocolError`,
      );
    }
  }
});
