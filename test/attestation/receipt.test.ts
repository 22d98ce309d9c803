import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { encodeCbor } from "../../attestation/cbor.ts";
import {
  type DeletionReceipt,
  decodeReceipt,
  encodeReceipt,
  erasedShareCommitment,
  receiptHash,
  verifyReceiptChain,
  ZERO_HASH,
} from "../../attestation/receipt.ts";
import {
  decodeIdentityStatement,
  decodeTransferKeyStatement,
  encodeIdentityStatement,
  encodeTransferKeyStatement,
  statementHash,
} from "../../attestation/statements.ts";
import { G, pointBytes } from "../../protocol/encoding.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { statechainIdBytes } from "../../protocol/statechain.ts";

const P = (k: bigint) => pointBytes(G.multiply(k));
const SC_A = statechainIdBytes({ txid: new Uint8Array(32).fill(0xaa), vout: 1 });
const SC_B = statechainIdBytes({ txid: new Uint8Array(32).fill(0xbb), vout: 0 });

function receipt(over: Partial<DeletionReceipt> = {}): Omit<DeletionReceipt, "v"> {
  return {
    type: "key-update",
    statechain: SC_A,
    epoch: 2,
    erased: erasedShareCommitment(P(11n)),
    S2: P(12n),
    prev: ZERO_HASH,
    log: new Uint8Array(32).fill(3),
    time: 1_700_000_000_000,
    ...over,
  };
}

const code = (c: string, re?: RegExp) => (e: unknown) =>
  e instanceof ProtocolError && e.code === c && (re === undefined || re.test(e.message));

test("a receipt is a canonical map with its keys in the specified order, and round-trips", () => {
  const bytes = encodeReceipt(receipt());
  const keys = ["v", "type", "statechain", "epoch", "erased", "S2", "prev", "log", "time"];
  let at = 1;
  for (const k of keys) {
    const enc = Buffer.from(encodeCbor(k));
    const i = Buffer.from(bytes).indexOf(enc, at);
    assert.ok(i >= at, `key ${k} in order`);
    at = i + enc.length;
  }
  assert.equal(bytes[0], 0xa9, "definite map of nine entries");
  const r = decodeReceipt(bytes);
  assert.equal(r.v, 1);
  assert.deepEqual(r, { v: 1, ...receipt() });
  assert.deepEqual(Buffer.from(encodeReceipt(r)), Buffer.from(bytes));
  assert.deepEqual(receiptHash(bytes), new Uint8Array(createHash("sha256").update(bytes).digest()));
});

test("the statechain id is txid (internal order) then vout big-endian; erased commits to S_old with a tag", () => {
  const id = statechainIdBytes({ txid: new Uint8Array(32).fill(1), vout: 0x01020304 });
  assert.equal(Buffer.from(id.subarray(32)).toString("hex"), "01020304");
  assert.throws(() => statechainIdBytes({ txid: new Uint8Array(31), vout: 0 }), /32 bytes/);
  assert.throws(() => statechainIdBytes({ txid: new Uint8Array(32), vout: 2 ** 32 }), /vout/);
  const expected = createHash("sha256")
    .update(Buffer.concat([Buffer.from("statechain/v1/erased-share"), P(11n)]))
    .digest();
  assert.deepEqual(Buffer.from(erasedShareCommitment(P(11n))), expected);
  assert.throws(() => erasedShareCommitment(new Uint8Array(33)), code("INVALID_POINT"));
});

test("erasure receipts carry no S2; key updates must", () => {
  const e = encodeReceipt(receipt({ type: "erasure", S2: null }));
  assert.equal(decodeReceipt(e).S2, null);
  assert.throws(
    () => encodeReceipt(receipt({ type: "erasure" })),
    code("RECEIPT_INVALID", /no new share point/),
  );
  assert.throws(
    () => encodeReceipt(receipt({ S2: null })),
    code("RECEIPT_INVALID", /needs the new share point/),
  );
});

test("decodeReceipt refuses every non-canonical or malformed encoding", () => {
  const good = receipt();
  const asMap = (edit: (m: Map<string, unknown>) => void) => {
    const m = new Map<string, unknown>(Object.entries({ v: 1, ...good }));
    edit(m);
    return encodeCbor(m as never);
  };
  const bytes = encodeReceipt(good);
  const cases: [string, Uint8Array, RegExp][] = [
    ["trailing byte", new Uint8Array([...bytes, 0]), /trailing/],
    [
      "keys reordered",
      asMap((m) => {
        const t = m.get("time");
        m.delete("time");
        const n = new Map([["time", t], ...m]);
        m.clear();
        for (const [k, v] of n) m.set(k, v);
      }),
      /in this order/,
    ],
    ["missing key", asMap((m) => m.delete("log")), /in this order/],
    ["extra key", asMap((m) => m.set("x", 1)), /canonical CBOR|in this order/],
    ["version 2", asMap((m) => m.set("v", 2)), /version 2/],
    ["epoch as text", asMap((m) => m.set("epoch", "2")), /epoch must be an unsigned integer/],
    ["negative epoch", asMap((m) => m.set("epoch", -1)), /epoch must be an unsigned integer/],
    ["short prev", asMap((m) => m.set("prev", new Uint8Array(31))), /prev must be 32 bytes/],
    [
      "S2 off the curve",
      asMap((m) => m.set("S2", Uint8Array.of(2, ...new Uint8Array(32)))),
      /S2 is not a valid secp256k1 point/,
    ],
    ["unknown type", asMap((m) => m.set("type", "identity")), /type must be "key-update" or "erasure"/],
    // time 1000 written with a 4-byte head instead of 2: same value, not canonical.
    [
      "long-form integer",
      new Uint8Array([...bytes.subarray(0, bytes.length - 9), 0x1a, 0x00, 0x00, 0x03, 0xe8]),
      /shortest form|canonical/,
    ],
  ];
  for (const [what, b, re] of cases) assert.throws(() => decodeReceipt(b), code("RECEIPT_INVALID", re), what);
  const indefinite = new Uint8Array([0xbf, ...bytes.subarray(1), 0xff]);
  assert.throws(() => decodeReceipt(indefinite), code("RECEIPT_INVALID"), "indefinite-length map");
});

test("statements: identity and transfer-key round-trip and can never be read as each other or as a receipt", () => {
  const identity = encodeIdentityStatement({
    instance: new Uint8Array(16).fill(1),
    log: new Uint8Array(32).fill(2),
    policy: new Uint8Array(32).fill(3),
    key: new Uint8Array(32).fill(4),
    rp: new Uint8Array(64).fill(5),
    time: 42,
  });
  const transfer = encodeTransferKeyStatement({
    statechain: SC_B,
    epoch: 4,
    receiver: P(5n),
    instance: new Uint8Array(16).fill(1),
    share: P(6n),
    kickoff: null,
    backup: new Uint8Array(32).fill(7),
    policy: new Uint8Array(32).fill(3),
  });
  assert.equal(decodeIdentityStatement(identity).type, "identity");
  assert.equal(decodeTransferKeyStatement(transfer).epoch, 4);
  assert.deepEqual(decodeTransferKeyStatement(transfer).receiver, P(5n));
  assert.equal(statementHash(identity).length, 32);
  const r = encodeReceipt(receipt());
  assert.throws(() => decodeReceipt(identity), code("RECEIPT_INVALID", /type must be/));
  assert.throws(() => decodeReceipt(transfer), code("RECEIPT_INVALID", /type must be/));
  assert.throws(
    () => decodeIdentityStatement(transfer),
    code("STATEMENT_INVALID", /type must be "identity"/),
  );
  assert.throws(
    () => decodeTransferKeyStatement(r),
    code("STATEMENT_INVALID", /type must be "transfer-key"/),
  );
  assert.throws(() => decodeIdentityStatement(r), code("STATEMENT_INVALID"));
  assert.throws(
    () =>
      encodeTransferKeyStatement({
        statechain: SC_B,
        epoch: 4,
        receiver: new Uint8Array(33),
        instance: new Uint8Array(16),
        share: P(6n),
        kickoff: null,
        backup: new Uint8Array(32),
        policy: new Uint8Array(32),
      }),
    code("STATEMENT_INVALID", /receiver is not a valid secp256k1 point/),
  );
  assert.throws(
    () =>
      encodeIdentityStatement({
        instance: new Uint8Array(15),
        log: ZERO_HASH,
        policy: ZERO_HASH,
        key: ZERO_HASH,
        rp: new Uint8Array(64),
        time: 1,
      }),
    code("STATEMENT_INVALID", /instance must be 16 bytes/),
  );
  assert.throws(
    () =>
      encodeIdentityStatement({
        instance: new Uint8Array(16),
        log: ZERO_HASH,
        policy: ZERO_HASH,
        key: new Uint8Array(31),
        rp: new Uint8Array(64),
        time: 1,
      }),
    code("STATEMENT_INVALID", /key must be 32 bytes/),
  );
});

/** A run of receipts from one enclave instance, each linked to the one before. */
function run(specs: Partial<DeletionReceipt>[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const [i, s] of specs.entries()) {
    out.push(
      encodeReceipt(receipt({ prev: i === 0 ? ZERO_HASH : receiptHash(out[i - 1]!), time: 1000 + i, ...s })),
    );
  }
  return out;
}

const checksOf = (r: ReturnType<typeof verifyReceiptChain>) => r.failures.map((f) => `${f.index}:${f.check}`);

test("a linked run of receipts verifies: epochs per statechain, erasure closing it", () => {
  const chain = run([
    { statechain: SC_A, epoch: 2 },
    { statechain: SC_B, epoch: 2 },
    { statechain: SC_A, epoch: 3 },
    { statechain: SC_A, epoch: 3, type: "erasure", S2: null },
    { statechain: SC_B, epoch: 5 },
  ]);
  const r = verifyReceiptChain(chain, { genesis: true });
  assert.deepEqual(r.failures, []);
  assert.equal(r.valid, true);
  // Continuing from a trusted previous receipt.
  assert.equal(verifyReceiptChain(chain.slice(2), { previous: chain[1]! }).valid, true);
});

test("gaps, forks, epoch order, actions after erasure and time going back are each named", () => {
  const chain = run([{ epoch: 2 }, { epoch: 3 }, { epoch: 4 }]);
  assert.deepEqual(checksOf(verifyReceiptChain([chain[0]!, chain[2]!])), ["1:receipt.prev_link"], "gap");
  assert.deepEqual(checksOf(verifyReceiptChain(chain.slice(1), { genesis: true })), ["0:receipt.genesis"]);
  // chain[1] given as its own predecessor: not linked, and epoch 3 does not follow epoch 3.
  assert.deepEqual(checksOf(verifyReceiptChain(chain.slice(1), { previous: chain[1]! })), [
    "0:receipt.prev_link",
    "0:receipt.epoch_order",
  ]);
  // Two receipts claiming the same predecessor.
  const fork = encodeReceipt(receipt({ epoch: 3, prev: receiptHash(chain[0]!), time: 1001, S2: P(99n) }));
  const forked = checksOf(verifyReceiptChain([chain[0]!, chain[1]!, fork]));
  assert.ok(forked.includes("2:receipt.fork") && forked.includes("2:receipt.prev_link"), forked.join());
  // Epochs must strictly increase per statechain.
  assert.deepEqual(checksOf(verifyReceiptChain(run([{ epoch: 3 }, { epoch: 3 }]))), [
    "1:receipt.epoch_order",
  ]);
  assert.deepEqual(checksOf(verifyReceiptChain(run([{ epoch: 3 }, { epoch: 2 }]))), [
    "1:receipt.epoch_order",
  ]);
  assert.deepEqual(checksOf(verifyReceiptChain(run([{ epoch: 3 }, { epoch: 2, statechain: SC_B }]))), []);
  assert.deepEqual(
    checksOf(verifyReceiptChain(run([{ epoch: 3 }, { epoch: 2, type: "erasure", S2: null }]))),
    ["1:receipt.epoch_order"],
  );
  assert.deepEqual(
    checksOf(verifyReceiptChain(run([{ epoch: 3, type: "erasure", S2: null }, { epoch: 4 }]))),
    ["1:receipt.after_erasure"],
  );
  assert.deepEqual(
    checksOf(
      verifyReceiptChain(
        run([
          { epoch: 2, time: 5000 },
          { epoch: 3, time: 4000 },
        ]),
      ),
    ),
    ["1:receipt.time_order"],
  );
  const broken = verifyReceiptChain([chain[0]!, new Uint8Array([0xa0])]);
  assert.deepEqual(checksOf(broken), ["1:receipt.structure"]);
  assert.equal(broken.receipts[1], null);
  assert.deepEqual(checksOf(verifyReceiptChain([chain[0]!], { previous: new Uint8Array([1]) })), [
    "-1:receipt.structure",
    "0:receipt.prev_link",
  ]);
});
