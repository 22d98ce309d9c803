// Hostile input: for every public RPC, thousands of random and mutated messages (bounded in count and time): the
// server stays up, every answer is a proper status code, the database is unchanged.
// The mutations start from one real, signed request per method, captured from a deposit and a transfer, so they
// get past protobuf decoding into the handlers' checks: bit flips, byte replacement, truncation, extension,
// duplicated and repeated fields, corrupted length prefixes, overlong varints, changed wire types and field
// numbers, mutations inside nested messages, and field values swapped for 33-byte "points" that are off the curve
// (and other bad sizes); then random bytes of random length and messages just above the size limit. A second test
// has an owner sign malformed key-generation and co-signing requests itself, so they pass the host's signature
// checks and reach the enclave's parsers and proof checks. A seeded PRNG picks everything: HOSTILE_SEED=<hex>
// repeats a run's choices (the captured requests are fresh each run, so a failure also prints the offending
// bytes). TEST_LONG=1 sends about 56,000 messages.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, type TestContext, test } from "node:test";
import { credentials, type ServiceError, status } from "@grpc/grpc-js";
import { sha256 } from "@noble/hashes/sha2.js";
import { confirmDeposit, deposit, type OwnedCoin, pub, send } from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import type { MethodName } from "../../client/se-client.ts";
import { loadConfig } from "../../host/config.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import {
  HealthClient,
  HealthCheckResponse_ServingStatus as Serving,
} from "../../proto/gen/grpc/health/v1/health.ts";
import { StatechainServiceService } from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { systemRng } from "../../protocol/rng.ts";
import { signWithdraw, verifyChain } from "../../protocol/statechain.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { fundedWallet, newIdentity } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { encodeRequest, METHODS, rawClient, signAs } from "../host/support/calls.ts";
import { type SteppingHarness, steppingHarness, tryCoSign } from "../host/support/coins.ts";
import { queryDb, snapshotDb } from "../host/support/db-snapshot.ts";

const LONG = process.env.TEST_LONG === "1";
/** Mutated and random messages per method (18 methods): ≈ 2,700 by default, ≈ 54,000 with TEST_LONG. */
const PER_METHOD = LONG ? 3000 : 150;
const OVERSIZED_PER_METHOD = 2;
/** Mutated requests re-signed by their owner, per step (3 steps). */
const SIGNED_PER_METHOD = LONG ? 600 : 60;
const IN_FLIGHT = 8;
const SEED = process.env.HOSTILE_SEED ?? randomBytes(16).toString("hex");
/** Rate limits off (0 = unlimited) and proof of work trivial, so the junk reaches the parsers and the checks. */
const ENV = {
  SE_MAINSTAY_ENABLED: "false",
  SE_INIT_LOCK: "200",
  SE_LOCKTIME_INTERVAL: "10",
  SE_RATE_PER_PEER: "0",
  SE_RATE_PER_CONNECTION: "0",
  SE_RATE_PER_KEY: "0",
  SE_POW_BITS: "0",
};
const MAX_MESSAGE = loadConfig({ env: { ...process.env, ...ENV } }).grpc.maxMessageBytes;

/** Methods that change nothing: they may answer junk they can read (an empty message is a valid GetInfo). */
const READ_ONLY = new Set<MethodName>([
  "getInfo",
  "getStatechain",
  "getSmtProof",
  "getAttestation",
  "getDepositChallenge",
]);
/**
 * Unsigned and idempotent: SignComplete takes only a signature that verifies under the coin's key, and for a
 * session already complete answers the stored result, writing nothing (the database comparison checks that).
 * A mutation that still decodes to that request may be accepted.
 */
const IDEMPOTENT_UNSIGNED = new Set<MethodName>(["signComplete"]);
/** Codes that say "your request was refused" (never UNKNOWN, INTERNAL, UNAVAILABLE, ...). */
const PROPER = new Set<number>([
  status.INVALID_ARGUMENT,
  status.FAILED_PRECONDITION,
  status.NOT_FOUND,
  status.RESOURCE_EXHAUSTED,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
  status.ALREADY_EXISTS,
  status.OUT_OF_RANGE,
  status.ABORTED,
]);

let se: SeProcess;
let h: SteppingHarness;
let coin1: OwnedCoin;
let coin2: OwnedCoin;
/** One real request per method, exactly as sent (signed requests were answered once, so their nonces are spent). */
const valid = new Map<MethodName, Buffer>();

before(async () => {
  se = await startSeProcess({ env: ENV });
  h = await steppingHarness(se);
  h.client.around = async (step, sendIt) => {
    if (!valid.has(step.method)) valid.set(step.method, encodeRequest(step.method, step.sent as never));
    return sendIt();
  };
  const wallet = await fundedWallet(h.chain);
  coin1 = await deposit(h.ctx, { amountSat: 500_000n, utxos: wallet.utxos, changeScript: wallet.script });
  await confirmDeposit(h.ctx, coin1, { onWait: async () => void (await h.chain.mine(1)) });
  const id2 = newIdentity();
  await send(h.ctx, coin1, id2.address);
  const [incoming] = await fetchIncoming(h.ctx, id2);
  coin2 = await receive(h.ctx, id2, incoming!);
  h.client.around = (_s, sendIt) => sendIt();
  await plausibleRequests();
});
after(async () => {
  h?.close();
  await se?.stop();
});

/**
 * Requests for the methods the flow did not call. The withdrawal ones carry the current owner's valid WITHDRAW
 * statechain transaction but an auth signed an hour ago: every check up to the signature's freshness runs, and
 * nothing the mutations make of them can start a withdrawal.
 */
async function plausibleRequests(): Promise<void> {
  const statechainId = coin2.statechainId;
  const hourAgo = Date.now() - 3_600_000;
  const sc = await h.client.current.call("getStatechain", { statechainId });
  const state = verifyChain(sc.depositProofKey, sc.chain).currentState;
  const dest = p2wpkhScript(newIdentity().address.proofKey);
  const build: { [M in MethodName]?: () => Buffer } = {
    getInfo: () => encodeRequest("getInfo", {}),
    getStatechain: () => encodeRequest("getStatechain", { statechainId }),
    getSmtProof: () => encodeRequest("getSmtProof", { statechainId }),
    getAttestation: () => encodeRequest("getAttestation", { nonce: randomBytes(32) }),
    // Two entries, each signed by its own key: an hour ago, so mutations run every check but read nothing.
    mailboxGetBatch: () =>
      encodeRequest("mailboxGetBatch", {
        mailboxes: [newIdentity(), newIdentity()].map((x) =>
          signAs(
            "mailboxGet",
            { receiverProofKey: x.address.proofKey, auth: undefined, discardMessageIds: [] },
            x.proofSecret,
            { nowMs: hourAgo, path: "/statechain.v1.StatechainService/MailboxGetBatch" },
          ),
        ),
      }),
    withdrawInit: () =>
      encodeRequest(
        "withdrawInit",
        signAs(
          "withdrawInit",
          {
            statechainId,
            statechainTx: signWithdraw(coin2.proofSecret, state, dest, systemRng),
            auth: undefined,
          },
          coin2.proofSecret,
          { nowMs: hourAgo },
        ),
      ),
    withdrawConfirm: () =>
      encodeRequest(
        "withdrawConfirm",
        signAs(
          "withdrawConfirm",
          { statechainId, withdrawalTx: coin2.backupTx, auth: undefined },
          coin2.proofSecret,
          { nowMs: hourAgo },
        ),
      ),
    getKeyUpdateResult: () =>
      encodeRequest(
        "getKeyUpdateResult",
        signAs(
          "getKeyUpdateResult",
          { statechainId, proofKey: Buffer.from(pub(coin2.proofSecret)), auth: undefined },
          coin2.proofSecret,
          { nowMs: hourAgo },
        ),
      ),
    recoverCoins: () =>
      encodeRequest(
        "recoverCoins",
        signAs(
          "recoverCoins",
          { proofKey: Buffer.from(pub(coin2.proofSecret)), auth: undefined },
          coin2.proofSecret,
          { nowMs: hourAgo },
        ),
      ),
  };
  for (const m of METHODS) {
    if (!valid.has(m)) {
      const b = build[m];
      assert.ok(b, `no request captured or built for ${m}`);
      valid.set(m, b());
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// a seeded PRNG (xoshiro128**)

class Prng {
  private readonly s: Uint32Array;
  constructor(seed: string) {
    this.s = new Uint32Array(Uint8Array.from(sha256(new TextEncoder().encode(seed)).subarray(0, 16)).buffer);
  }
  u32(): number {
    const s = this.s;
    const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k));
    const out = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return out;
  }
  /** 0 ≤ result < n. */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) b[i + j] = v >>> (8 * j);
    }
    return b;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// protobuf wire format, just enough to mutate messages field by field

interface Field {
  no: number;
  wt: number;
  /** The whole field (tag, length prefix, value). */
  start: number;
  end: number;
  tagEnd: number;
  /** The value (for wire type 2: after the length prefix). */
  valueStart: number;
}

function readVarint(b: Buffer, pos: number): [bigint, number] | undefined {
  let v = 0n;
  for (let i = 0; i < 10 && pos + i < b.length; i++) {
    const byte = b[pos + i]!;
    v |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if (!(byte & 0x80)) return [v, pos + i + 1];
  }
  return undefined;
}

function varint(v: bigint): Buffer {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    const low = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? low | 0x80 : low);
  } while (x);
  return Buffer.from(out);
}

const tagBytes = (no: number, wt: number) => varint((BigInt(no) << 3n) | BigInt(wt));

/** The top-level fields of `b`, or undefined when it is not a well-formed message (groups count as malformed). */
function parseFields(b: Buffer): Field[] | undefined {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < b.length) {
    const t = readVarint(b, pos);
    if (!t) return undefined;
    const no = Number(t[0] >> 3n);
    const wt = Number(t[0] & 7n);
    if (no === 0) return undefined;
    const tagEnd = t[1];
    let valueStart = tagEnd;
    let end: number;
    if (wt === 0) {
      const v = readVarint(b, valueStart);
      if (!v) return undefined;
      end = v[1];
    } else if (wt === 1) end = valueStart + 8;
    else if (wt === 5) end = valueStart + 4;
    else if (wt === 2) {
      const len = readVarint(b, valueStart);
      if (!len || len[0] > BigInt(b.length)) return undefined;
      valueStart = len[1];
      end = valueStart + Number(len[0]);
    } else return undefined;
    if (end > b.length) return undefined;
    fields.push({ no, wt, start: pos, end, tagEnd, valueStart });
    pos = end;
  }
  return fields;
}

const lengthDelimited = (f: Field[]) => f.filter((x) => x.wt === 2);
const ld = (no: number, value: Buffer) =>
  Buffer.concat([tagBytes(no, 2), varint(BigInt(value.length)), value]);
const replaceSpan = (b: Buffer, start: number, end: number, by: Buffer) =>
  Buffer.concat([b.subarray(0, start), by, b.subarray(end)]);

// ---------------------------------------------------------------------------------------------------------------
// bad values: points off the curve, scalars out of range, wrong sizes

const P = 2n ** 256n - 2n ** 32n - 977n;
function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let r = 1n;
  let b = base % m;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
  }
  return r;
}
/** The smallest x with no point (x, y) on secp256k1: x³ + 7 is not a square mod p. */
function offCurveX(): Buffer {
  for (let x = 1n; ; x++) {
    if (modPow((x * x * x + 7n) % P, (P - 1n) / 2n, P) !== 1n)
      return Buffer.from(x.toString(16).padStart(64, "0"), "hex");
  }
}
const OFF_X = offCurveX();
const N_HEX = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
const BAD_VALUES: readonly Buffer[] = [
  Buffer.alloc(33),
  Buffer.alloc(33, 0xff),
  Buffer.concat([Buffer.from([0x02]), Buffer.alloc(32, 0xff)]),
  Buffer.concat([Buffer.from([0x02]), OFF_X]),
  Buffer.concat([Buffer.from([0x03]), OFF_X]),
  Buffer.concat([Buffer.from([0x04]), OFF_X]),
  Buffer.concat([Buffer.from([0x02]), Buffer.from(P.toString(16), "hex")]),
  Buffer.concat([Buffer.from([0x04]), OFF_X, OFF_X]),
  Buffer.alloc(32),
  Buffer.alloc(32, 0xff),
  Buffer.from(N_HEX, "hex"),
  Buffer.alloc(34, 0x02),
  Buffer.alloc(0),
  Buffer.from([0x02]),
  Buffer.alloc(64, 0xff),
  Buffer.alloc(4097, 0x41),
];
const HUGE_VARINTS: readonly bigint[] = [
  0n,
  1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 63n,
  2n ** 64n - 1n,
];

// ---------------------------------------------------------------------------------------------------------------
// mutations

type Mutator = (r: Prng, b: Buffer, depth: number) => Buffer;

const bitFlips: Mutator = (r, b) => {
  if (b.length === 0) return r.bytes(1 + r.int(8));
  const out = Buffer.from(b);
  for (let i = 1 + r.int(8); i > 0; i--) out[r.int(out.length)]! ^= 1 << r.int(8);
  return out;
};

/** Field-level mutators fall back to bit flips when the input has no (suitable) fields. */
const withFields =
  (f: (r: Prng, b: Buffer, fields: Field[], depth: number) => Buffer | undefined): Mutator =>
  (r, b, depth) => {
    const fields = parseFields(b);
    return (fields?.length && f(r, b, fields, depth)) || bitFlips(r, b, depth);
  };

const MUTATORS: Record<string, Mutator> = {
  bitFlips,
  bytes: (r, b) => {
    if (b.length === 0) return r.bytes(1 + r.int(16));
    const out = Buffer.from(b);
    for (let i = 1 + r.int(6); i > 0; i--)
      out[r.int(out.length)] = r.pick([0x00, 0xff, 0x80, 0x7f, r.int(256)]);
    return out;
  },
  truncate: (r, b) => b.subarray(0, r.int(b.length)),
  extend: (r, b) => Buffer.concat([b, r.bytes(1 + r.int(64))]),
  insert: (r, b) => {
    const at = r.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(32)), b.subarray(at)]);
  },
  duplicateField: withFields((r, b, fields) => {
    const f = r.pick(fields);
    const at = r.pick(fields).start;
    return Buffer.concat([b.subarray(0, at), b.subarray(f.start, f.end), b.subarray(at)]);
  }),
  repeatField: withFields((r, b, fields) => {
    const f = r.pick(fields);
    const copies = Array.from({ length: 2 + r.int(200) }, () => b.subarray(f.start, f.end));
    return Buffer.concat([b, ...copies]);
  }),
  removeField: withFields((r, b, fields) => {
    const f = r.pick(fields);
    return replaceSpan(b, f.start, f.end, Buffer.alloc(0));
  }),
  swapFields: withFields((r, b, fields) => {
    const [x, y] = [r.pick(fields), r.pick(fields)].sort((p, q) => p.start - q.start) as [Field, Field];
    if (x === y) return undefined;
    // Each field's number with the other's value (and wire type).
    const payload = (f: Field) => b.subarray(f.tagEnd, f.end);
    return Buffer.concat([
      b.subarray(0, x.start),
      tagBytes(x.no, y.wt),
      payload(y),
      b.subarray(x.end, y.start),
      tagBytes(y.no, x.wt),
      payload(x),
      b.subarray(y.end),
    ]);
  }),
  lengthPrefix: withFields((r, b, fields) => {
    const f = lengthDelimited(fields);
    if (!f.length) return undefined;
    const x = r.pick(f);
    const len = x.end - x.valueStart;
    const bad = r.pick([0n, BigInt(len - 1), BigInt(len + 1), BigInt(len + 1000), ...HUGE_VARINTS]);
    const tag = tagBytes(x.no, 2);
    return replaceSpan(b, x.start, x.valueStart, Buffer.concat([tag, varint(bad)]));
  }),
  varintOverflow: withFields((r, b, fields) => {
    const x = r.pick(fields);
    // Eleven bytes of continuation, or ten that never end, in place of a value or a length.
    const overlong = r.pick([
      Buffer.concat([Buffer.alloc(10, 0xff), Buffer.from([0x01])]),
      Buffer.alloc(10, 0xff),
      Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
      varint(r.pick(HUGE_VARINTS)),
    ]);
    const tag = tagBytes(x.no, x.wt === 2 ? 2 : 0);
    return replaceSpan(b, x.start, x.wt === 2 ? x.valueStart : x.end, Buffer.concat([tag, overlong]));
  }),
  wireType: withFields((r, b, fields) => {
    const x = r.pick(fields);
    const wt = r.pick([0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== x.wt));
    return replaceSpan(b, x.start, x.tagEnd, tagBytes(x.no, wt));
  }),
  fieldNumber: withFields((r, b, fields) => {
    const x = r.pick(fields);
    const no = r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 19000, 2 ** 29 - 1, 1 + r.int(64)]);
    const tag = no === 0 ? Buffer.from([x.wt]) : tagBytes(no, x.wt);
    return replaceSpan(b, x.start, x.tagEnd, tag);
  }),
  badValue: withFields((r, b, fields) => {
    const f = lengthDelimited(fields);
    if (!f.length) return undefined;
    const x = r.pick(f);
    return replaceSpan(b, x.start, x.end, ld(x.no, r.pick(BAD_VALUES)));
  }),
  /** A mutation inside a nested message (auth, outpoint, proofs), its length prefix kept right. */
  nested: withFields((r, b, fields, depth) => {
    const inner = lengthDelimited(fields).filter((x) => parseFields(b.subarray(x.valueStart, x.end))?.length);
    if (!inner.length || depth > 3) return undefined;
    const x = r.pick(inner);
    return replaceSpan(b, x.start, x.end, ld(x.no, mutate(r, b.subarray(x.valueStart, x.end), depth + 1)));
  }),
};
const MUTATOR_NAMES = Object.keys(MUTATORS);

function mutate(r: Prng, b: Buffer, depth = 0): Buffer {
  let out = b;
  // Mostly one mutation, sometimes a few stacked.
  for (let i = r.int(4) === 0 ? 2 + r.int(3) : 1; i > 0; i--)
    out = MUTATORS[r.pick(MUTATOR_NAMES)]!(r, out, depth);
  return out;
}

/** A message of random fields: valid framing with random numbers, wire types and contents. */
function randomMessage(r: Prng): Buffer {
  const parts: Buffer[] = [];
  for (let i = r.int(12); i >= 0; i--) {
    const no = 1 + r.int(20);
    const wt = r.pick([0, 0, 2, 2, 2, 1, 5]);
    if (wt === 0) parts.push(tagBytes(no, 0), varint(BigInt(r.u32()) * BigInt(1 + r.int(2 ** 20))));
    else if (wt === 1) parts.push(tagBytes(no, 1), r.bytes(8));
    else if (wt === 5) parts.push(tagBytes(no, 5), r.bytes(4));
    else
      parts.push(ld(no, r.int(3) === 0 ? r.pick(BAD_VALUES) : r.bytes(r.pick([16, 32, 33, 64, r.int(600)]))));
  }
  return Buffer.concat(parts);
}

interface Probe {
  kind: string;
  bytes: Buffer;
}

/** The messages sent to one method, generated as they are sent. */
function* probes(r: Prng, method: MethodName): Generator<Probe> {
  const base = valid.get(method)!;
  yield { kind: "replay", bytes: base };
  for (let i = 0; i < PER_METHOD; i++) {
    const roll = r.int(100);
    if (roll < 70) yield { kind: "mutated", bytes: mutate(r, base) };
    else if (roll < 85) yield { kind: "random", bytes: r.bytes(r.int(4097)) };
    else yield { kind: "random-fields", bytes: randomMessage(r) };
  }
  for (let i = 0; i < OVERSIZED_PER_METHOD; i++) {
    const size = MAX_MESSAGE + 1 + r.int(1024);
    const bytes = Buffer.alloc(size);
    for (let at = 0; at < size; at += base.length || 1) base.copy(bytes, at);
    yield { kind: "oversized", bytes };
  }
}

// ---------------------------------------------------------------------------------------------------------------

const codeName = (c: number) => status[c] ?? String(c);
const hexHead = (b: Buffer) =>
  `${b.subarray(0, 96).toString("hex")}${b.length > 96 ? "…" : ""} (${b.length} B)`;

/** Every table of the host's database as sorted JSON rows (the helper's snapshot, plus WITHOUT ROWID tables). */
async function snapshotAll(): Promise<Record<string, string[]>> {
  const tables = await queryDb<{ name: string }>(
    se.dataDir,
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
  );
  return snapshotDb(
    se.dataDir,
    tables.map((x) => x.name),
  );
}

type Tally = Map<MethodName, Map<string, number>>;

/** Sends each method's probes (IN_FLIGHT at a time, one method after the other) on one channel and judges every
 * answer; `mayAccept` methods may also answer OK. */
async function barrage(
  methods: readonly MethodName[],
  probesOf: (m: MethodName) => Iterator<Probe>,
  mayAccept = false,
): Promise<{ tally: Tally; violations: string[]; sent: number }> {
  const raw = rawClient(`127.0.0.1:${se.port}`);
  const tally: Tally = new Map();
  const violations: string[] = [];
  let sent = 0;
  try {
    for (const method of methods) {
      const counts = new Map<string, number>();
      tally.set(method, counts);
      const queue = probesOf(method);
      const worker = async () => {
        for (let next = queue.next(); !next.done; next = queue.next()) {
          const p = next.value;
          sent++;
          const problem = await judge(raw, method, p, counts, mayAccept);
          if (problem) violations.push(`${method} ${p.kind}: ${problem}; request ${hexHead(p.bytes)}`);
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      assert.equal(se.proc.exitCode, null, `the SE exited during the ${method} barrage`);
    }
  } finally {
    raw.close();
  }
  return { tally, violations, sent };
}

/** One diagnostic line per method with its status codes, and a total. */
function report(t: TestContext, tally: Tally, sent: number, started: number): void {
  const line = (counts: Map<string, number>) =>
    [...counts]
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${c} ${n}`)
      .join(", ");
  const total = new Map<string, number>();
  for (const [method, counts] of tally) {
    t.diagnostic(`${method}: ${line(counts)}`);
    for (const [c, n] of counts) total.set(c, (total.get(c) ?? 0) + n);
  }
  t.diagnostic(`${sent} messages in ${((Date.now() - started) / 1000).toFixed(1)} s: ${line(total)}`);
}

/** The SE is up and healthy and logged no error (an unexpected error is logged at level 50) since `from`. */
async function assertHealthy(from: { stdout: number; stderr: number }): Promise<void> {
  assert.equal(se.proc.exitCode, null, "the SE process is alive");
  assert.equal(se.proc.signalCode, null);
  const health = new HealthClient(`127.0.0.1:${se.port}`, credentials.createInsecure());
  try {
    const res = await unary(health, health.check, { service: "" }, { deadlineMs: 5000 });
    assert.equal(res.status, Serving.SERVING);
  } finally {
    health.close();
  }
  const info = await h.client.current.call("getInfo", {});
  assert.equal(info.network, "regtest");
  const out = se.output();
  const errors = out.stdout
    .slice(from.stdout)
    .split("\n")
    .filter((l) => /"level":(5|6)\d/.test(l));
  assert.deepEqual(errors, [], "no error is logged");
  assert.doesNotMatch(out.stderr.slice(from.stderr), /uncaught|unhandled|^\s+at /im);
}

const logPosition = () => ({ stdout: se.output().stdout.length, stderr: se.output().stderr.length });

/**
 * The database once the transfer's after-commit work (SMT, watchtower) is done: the snapshot the barrage must leave
 * as it was, taken when two in a row agree.
 */
async function settledSnapshot(): Promise<Record<string, string[]>> {
  await h.client.current.call("getSmtProof", { statechainId: coin2.statechainId });
  await waitUntilAsync(async () => {
    const [tower] = await queryDb<{ owner_index: number }>(
      se.dataDir,
      "SELECT owner_index FROM watchtower_entries",
    );
    return tower?.owner_index === 2;
  }, "the watchtower to hold owner 2's backup");
  let last = await snapshotAll();
  for (let i = 0; i < 20; i++) {
    await new Promise((res) => setTimeout(res, 250));
    const next = await snapshotAll();
    if (JSON.stringify(next) === JSON.stringify(last)) return next;
    last = next;
  }
  assert.fail("the database kept changing with no request in flight");
}

async function waitUntilAsync(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await cond()) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test(`every public method, ${PER_METHOD + OVERSIZED_PER_METHOD + 1} hostile messages each: proper refusals, no crash, no database change`, async (t) => {
  t.diagnostic(
    `HOSTILE_SEED=${SEED} (${PER_METHOD} mutated/random messages per method, ${METHODS.length} methods)`,
  );
  const r = new Prng(SEED);
  const before = await settledSnapshot();
  const tables = Object.keys(before);
  assert.ok(
    tables.includes("statechains") && tables.includes("auth_nonces") && tables.includes("smt_nodes"),
    `the database snapshot holds statechains, auth_nonces and smt_nodes (tables: ${tables})`,
  );
  const logFrom = logPosition();

  const started = Date.now();
  const { tally, violations, sent } = await barrage(METHODS, (m) => probes(r, m));
  report(t, tally, sent, started);
  assert.deepEqual(
    violations.slice(0, 10),
    [],
    `HOSTILE_SEED=${SEED}: ${violations.length} improper answers`,
  );
  assert.ok(sent >= METHODS.length * PER_METHOD, "every message was sent");

  // Still up, still healthy, nothing written.
  await assertHealthy(logFrom);
  const afterBarrage = await snapshotAll();
  for (const table of tables) {
    assert.deepEqual(afterBarrage[table], before[table], `HOSTILE_SEED=${SEED}: table ${table} changed`);
  }
  // The real coin still works: its owner co-signs, the previous owner still cannot.
  assert.equal(await tryCoSign(h, coin2), true, "the current owner co-signs");
  assert.equal(await tryCoSign(h, coin1), status.UNAUTHENTICATED, "the previous owner is still locked out");
});

// ---------------------------------------------------------------------------------------------------------------
// signed by the right key, malformed inside: past the host's checks into the enclave

interface Held {
  method: MethodName;
  /** The request as the flow built it, unsigned. */
  request: object;
  signer: Uint8Array;
}

/** Runs `flow` and stops it at its first call of `stopAt` (not sent); returns that call and the ones before it. */
async function holdBack(stopAt: MethodName, flow: () => Promise<unknown>): Promise<Map<MethodName, Held>> {
  const seen = new Map<MethodName, Held>();
  h.client.around = async (step, sendIt) => {
    if (step.signer)
      seen.set(step.method, { method: step.method, request: step.request, signer: step.signer });
    if (step.method === stopAt) throw new Error(`held back at ${stopAt}`);
    return sendIt();
  };
  try {
    await assert.rejects(flow(), /held back/);
  } finally {
    h.client.around = (_s, sendIt) => sendIt();
  }
  assert.ok(seen.has(stopAt), `the flow reached ${stopAt} before it was held back`);
  return seen;
}

/** A mutation inside the request's largest field (the key share, the partial signature, the transaction). */
function mutateLargestField(r: Prng, b: Buffer): Buffer {
  const x = lengthDelimited(parseFields(b) ?? []).sort(
    (p, q) => q.end - q.valueStart - (p.end - p.valueStart),
  )[0];
  return x
    ? replaceSpan(b, x.start, x.end, ld(x.no, mutate(r, b.subarray(x.valueStart, x.end))))
    : mutate(r, b);
}

/** What a step's checks see of a request: its content without the signature. */
function essence(method: MethodName, req: object): Buffer {
  return encodeRequest(method, { ...req, auth: undefined } as never);
}

/**
 * Mutations of `held`'s content, each signed afresh by its owner: only decodable ones that differ from the
 * original, so every one passes the host's signature and replay checks and meets the step's own checks.
 */
function* signedMutants(r: Prng, held: Held): Generator<Probe> {
  const def = StatechainServiceService[held.method];
  const unsigned = encodeRequest(held.method, { ...held.request, auth: undefined } as never);
  const original = essence(held.method, held.request);
  for (let made = 0, tries = 0; made < SIGNED_PER_METHOD && tries < 50 * SIGNED_PER_METHOD; tries++) {
    let req: object;
    try {
      req = def.requestDeserialize(
        r.int(4) ? mutateLargestField(r, unsigned) : mutate(r, unsigned),
      ) as object;
    } catch {
      continue;
    }
    if (essence(held.method, req).equals(original)) continue;
    made++;
    const content = { ...req, auth: undefined } as never;
    yield { kind: "signed", bytes: encodeRequest(held.method, signAs(held.method, content, held.signer)) };
  }
}

test(`requests signed by their owner but malformed inside (${SIGNED_PER_METHOD} per step): proper refusals from the enclave too`, async (t) => {
  const r = new Prng(`${SEED}/signed`);
  const logFrom = logPosition();
  // A deposit stopped before its key generation's second round, and a coin with a co-signing round open.
  const atKeyGen = await holdBack("depositKeyGen", () =>
    deposit(h.ctx, { amountSat: 500_000n, utxos: [], changeScript: Buffer.alloc(22) }),
  );
  const wallet = await fundedWallet(h.chain);
  const coinB = await deposit(h.ctx, {
    amountSat: 400_000n,
    utxos: wallet.utxos,
    changeScript: wallet.script,
  });
  await confirmDeposit(h.ctx, coinB, { onWait: async () => void (await h.chain.mine(1)) });
  const signing = await holdBack("signSecond", () => tryCoSign(h, coinB));
  const held: Held[] = [
    atKeyGen.get("depositKeyGen")!,
    signing.get("signFirst")!,
    // Last: a bad partial signature may taint coin B's key (the enclave's answer to a failed final check).
    signing.get("signSecond")!,
  ];

  const started = Date.now();
  const byMethod = new Map(held.map((x) => [x.method, x]));
  const { tally, violations, sent } = await barrage(
    held.map((x) => x.method),
    (m) => signedMutants(r, byMethod.get(m)!),
    true,
  );
  report(t, tally, sent, started);
  const scB = await h.client.current.call("getStatechain", { statechainId: coinB.statechainId });
  t.diagnostic(`coin B ends ${StatechainStatus[scB.status]}`);
  assert.deepEqual(
    violations.slice(0, 10),
    [],
    `HOSTILE_SEED=${SEED}: ${violations.length} improper answers`,
  );
  assert.equal(sent, held.length * SIGNED_PER_METHOD, "enough decodable mutants");

  await assertHealthy(logFrom);
  assert.equal(await tryCoSign(h, coin2), true, "the other coin's owner still co-signs");
});

/** Sends one probe; returns what is wrong with the answer, if anything, and counts its code. */
async function judge(
  raw: ReturnType<typeof rawClient>,
  method: MethodName,
  p: Probe,
  counts: Map<string, number>,
  mayAccept = false,
): Promise<string | undefined> {
  const count = (c: string) => counts.set(c, (counts.get(c) ?? 0) + 1);
  let res: Buffer;
  try {
    res = await raw.call(method, p.bytes);
  } catch (err) {
    const e = err as ServiceError;
    count(codeName(e.code));
    if (!PROPER.has(e.code)) return `answered ${codeName(e.code)}: ${e.details}`;
    if (p.kind === "oversized" && e.code !== status.RESOURCE_EXHAUSTED)
      return `an oversized message answered ${codeName(e.code)}: ${e.details}`;
    if (!e.details?.trim()) return `answered ${codeName(e.code)} without a message`;
    if (/\s{4}at |internal error/i.test(e.details)) return `leaked an internal error: ${e.details}`;
    return undefined;
  }
  count("OK");
  // A success is fine for a read, or for the exact replay of a request already answered (the stored answer);
  // the database comparison after the barrage shows that none of them wrote anything.
  const replay = p.bytes.equals(valid.get(method)!);
  if (!mayAccept && !READ_ONLY.has(method) && !IDEMPOTENT_UNSIGNED.has(method) && !replay)
    return "a mutating method accepted a hostile request";
  try {
    StatechainServiceService[method].responseDeserialize(res);
  } catch {
    return "answered OK with bytes that are not its response message";
  }
  return undefined;
}
