// The enclave through its real gRPC Unix socket, as a (possibly compromised) host sees it: keygen, co-signing
// under the policy, transfer and key update, erasure checked in the process's memory, replays, a c3 altered in
// transit, withdrawal and closing. The owner is the Paillier holder (DESIGN.md 3.1): the enclave's memory holds
// no Paillier secret at any time.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as bitcoin from "bitcoinjs-lib";
import { decodeReceipt, verifyReceiptChain } from "../../attestation/receipt.ts";
import { decodeIdentityStatement, decodeTransferKeyStatement } from "../../attestation/statements.ts";
import { verifyAttestation } from "../../attestation/verify.ts";
import { connectEnclave, ENCLAVE_ENV, ENCLAVE_NODE_FLAGS } from "../../host/enclave-process.ts";
import { type Outpoint, SignPurpose, StatechainStatus } from "../../proto/gen/common.ts";
import type { EnclaveServiceClient } from "../../proto/gen/enclave.ts";
import {
  DepositFundRequest,
  DepositInitRequest,
  DepositKeyGenRequest,
  SignFirstRequest,
  SignSecondRequest,
  TransferReceiverInitRequest,
  TransferReceiverKeyUpdateRequest,
  TransferSenderInitRequest,
  WithdrawInitRequest,
} from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { type Authenticated, type Codec, signRequest } from "../../protocol/auth.ts";
import { mulG } from "../../protocol/ecdsa2p/ec.ts";
import {
  type HolderKey,
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderKeyUpdate,
  holderKeyUpdateFinish,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
} from "../../protocol/ecdsa2p/holder.ts";
import { generatePaillierKey } from "../../protocol/ecdsa2p/paillier.ts";
import { instancePublicKey } from "../../protocol/ecdsa2p/partial-statement.ts";
import { verifyRingPedersen } from "../../protocol/ecdsa2p/ring-pedersen.ts";
import { isScalarInRange } from "../../protocol/ecdsa2p/scalar-ct.ts";
import { decrypt as eciesDecrypt, encrypt as eciesEncrypt } from "../../protocol/ecies.ts";
import { bytesToBigInt, N, parseScalar, pointBytes, scalarBytes } from "../../protocol/encoding.ts";
import { systemRng } from "../../protocol/rng.ts";
import { initialState, nextState, signTransfer, signWithdraw } from "../../protocol/statechain.ts";
import { buildBackupTx, buildWithdrawalTx } from "../../protocol/tx/build.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { bip143Digest } from "../../protocol/tx/sign.ts";
import { bigForms, scalarForms, scanProcessMemory } from "../helpers/memory.ts";
import { ROOT, waitUntil } from "../helpers/se-process.ts";
import { SeededStream } from "../helpers/seeded-stream.ts";

const SVC = "/statechain.v1.StatechainService/";
const rng = systemRng;
const SEED = Buffer.alloc(32, 7);
/** The chain tip the test reports (the enclave refuses to see it go down). */
const TIP = 100;
const INIT_LOCK = 100;
const INTERVAL = 10;
const AMOUNT = 1_000_000n;

let proc: ChildProcess;
let client: EnclaveServiceClient;
let dir: string;
let coinAfter: TestCoin | undefined;
/** Copies of the owners' Paillier primes found in the enclave's memory after the key update (there must be none). */
let primeHits: ReturnType<typeof scanProcessMemory> | undefined;
/** What owners take from the enclave's attested identity: its ring-Pedersen parameters and instance key. */
let view: {
  ringPedersen: ReturnType<typeof verifyRingPedersen>;
  instanceKey: ReturnType<typeof instancePublicKey>;
};
let lastReceipt: Buffer | undefined;
/** The enclave's first deposit. */
let coin0: TestCoin;

function signed<T extends Authenticated>(codec: Codec<T>, method: string, req: T, sk: Uint8Array): Buffer {
  const s = signRequest(codec, SVC + method, req, sk, { nowMs: Date.now(), rng });
  return Buffer.from(codec.encode(s).finish());
}

// biome-ignore lint/suspicious/noExplicitAny: the generated client's methods, called by name
const call = <T = any>(method: string, req: unknown): Promise<T> =>
  unary(client, (client as unknown as Record<string, Parameters<typeof unary>[1]>)[method]!, req, {
    deadlineMs: 60_000,
  }) as Promise<T>;

/** Rejects with gRPC status `status` and an "[CODE] …" message. */
async function refused(p: Promise<unknown>, status: number, code: string): Promise<string> {
  try {
    await p;
  } catch (err) {
    const e = err as { code: number; details: string };
    assert.equal(e.code, status, `expected status ${status}, got ${e.code}: ${e.details}`);
    assert.ok(e.details.startsWith(`[${code}]`), `expected [${code}], got: ${e.details}`);
    return e.details;
  }
  throw new Error(`expected a refusal with ${code}`);
}

const secret = () => Buffer.from(secp256k1.utils.randomSecretKey());
const pub = (sk: Uint8Array) => Buffer.from(secp256k1.getPublicKey(sk, true));

interface TestCoin {
  id: Outpoint;
  /** Drawn by the enclave from its seeded stream just before s1. */
  depositId: Buffer;
  P: Buffer;
  S: Buffer;
  c: Buffer;
  b: Buffer;
  key: HolderKey;
  ownerIndex: number;
  state: Buffer;
  initialLock: number;
}

async function depositCoin(tip = TIP): Promise<TestCoin> {
  const c = secret();
  const b = secret();
  const keygenSessionId = Buffer.from(rng(16));
  const h1 = holderKeyGenCommit({
    sessionId: keygenSessionId,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: view.ringPedersen,
    rng,
  });
  const init = await call("keyGenInit", {
    signedRequest: signed(
      DepositInitRequest,
      "DepositInit",
      { proofKey: pub(c), guard: undefined, auth: undefined, holderCommit: h1.msg, keygenSessionId },
      c,
    ),
  });
  const { key, msg } = holderKeyGenFinish(h1.state, init.seShare, { rng });
  await call("keyGenFinish", {
    signedRequest: signed(
      DepositKeyGenRequest,
      "DepositKeyGen",
      { depositId: init.depositId, ownerShare: msg, auth: undefined },
      c,
    ),
  });
  const P = Buffer.from(pointBytes(key.sharedPublicKey));
  const funding = new bitcoin.Transaction();
  funding.version = 2;
  funding.addInput(Buffer.from(rng(32)), 0);
  funding.addOutput(p2wpkhScript(P), AMOUNT);
  const bound = await call("bindFunding", {
    signedRequest: signed(
      DepositFundRequest,
      "DepositFund",
      {
        depositId: init.depositId,
        fundingTx: Buffer.from(funding.toBuffer()),
        vout: 0,
        backupKey: pub(b),
        auth: undefined,
      },
      c,
    ),
    chainTip: tip,
  });
  assert.equal(bound.initialLock, tip + INIT_LOCK);
  return {
    id: bound.statechainId,
    depositId: Buffer.from(init.depositId),
    P,
    S: Buffer.from(init.seShare.publicShare),
    c,
    b,
    key,
    ownerIndex: 1,
    state: Buffer.from(initialState(pub(c))),
    initialLock: bound.initialLock,
  };
}

function backupTx(
  coin: TestCoin,
  owner: number,
  payee: Uint8Array,
  tweak: { lock?: number; txid?: Uint8Array } = {},
) {
  return buildBackupTx({
    mode: "absolute",
    spend: { txid: tweak.txid ?? coin.id.txid, vout: coin.id.vout },
    spendAmountSat: AMOUNT,
    backupKey: payee,
    lock: tweak.lock ?? coin.initialLock - (owner - 1) * INTERVAL,
    feeRateSatVb: 2,
  }).raw;
}

async function cosign(
  coin: TestCoin,
  signer: Uint8Array,
  purpose: SignPurpose,
  raw: Uint8Array,
  opts: { tip?: number; tamper?: (partial: { partialSignature: Buffer }) => void } = {},
) {
  const digest = bip143Digest(raw, 0, coin.P, AMOUNT);
  const sessionId = Buffer.from(rng(16));
  const { state, msg } = holderSignCommit(coin.key, { sessionId, digest, rng });
  const first = await call("signFirst", {
    signedRequest: signed(
      SignFirstRequest,
      "SignFirst",
      {
        statechainId: coin.id,
        purpose,
        tx: Buffer.from(raw),
        inputIndex: 0,
        ownerCommit: msg,
        sessionId,
        auth: undefined,
      },
      signer,
    ),
    chainTip: opts.tip ?? TIP,
    kickoffHeight: 0,
  });
  assert.deepEqual(Buffer.from(first.digest), Buffer.from(digest), "the enclave computed the same digest");
  const opening = holderSignNonce(coin.key, state, first.seNonce, { rng });
  const secondBytes = signed(
    SignSecondRequest,
    "SignSecond",
    { statechainId: coin.id, sessionId, ownerNonce: opening, auth: undefined },
    signer,
  );
  const second = await call("signSecond", { signedRequest: secondBytes });
  // What the host relays; a test may alter it in transit.
  const partial = { ...second.sePartial, partialSignature: Buffer.from(second.sePartial.partialSignature) };
  opts.tamper?.(partial);
  const out = holderSignFinish(coin.key, state, partial, { instanceKey: view.instanceKey });
  assert.ok(out.ok, "the owner finishes the signature");
  const sig = out.signature;
  assert.ok(
    secp256k1.verify(sig.compact, digest, coin.P, { prehash: false, lowS: true }),
    "the co-signed signature verifies (low s) under the coin's shared key",
  );
  return { sig, secondBytes };
}

/**
 * How many times the transfer test's key update and memory scan run, a fresh coin each time after the first
 * (ERASURE_RUNS, default 1). An erasure must hold every time: a copy left behind now and then is a copy left.
 */
const ERASURE_RUNS = (() => {
  const raw = process.env.ERASURE_RUNS ?? "1";
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`ERASURE_RUNS must be a positive integer, not "${raw}"`);
  return n;
})();
/** The enclave's randomness (the seeded stream), and how far into it the last secret found lies. */
const stream = new SeededStream(SEED);
let streamAt = 0;
/** How far ahead of the last secret found the next one is looked for (the draws between are a few KB). */
const STREAM_SPAN = 256 << 10;

/** A secret, the memory forms the scan looks for and the number forms the heap snapshot must not hold. */
const forms = (name: string, x: bigint): Array<[string, Buffer]> => {
  const f = scalarForms(x);
  return [
    [`${name}be`, f.be],
    [`${name}le`, f.le],
  ];
};

/** Writes a heap snapshot of the enclave (SIGUSR2) and returns its text; the file is removed. */
async function heapSnapshot(): Promise<string> {
  const before = new Set(readdirSync(dir).filter((f) => f.endsWith(".heapsnapshot")));
  proc.kill("SIGUSR2");
  let snap = "";
  await waitUntil(
    () => {
      const f = readdirSync(dir).find((n) => n.endsWith(".heapsnapshot") && !before.has(n));
      if (!f) return false;
      const size = statSync(path.join(dir, f)).size;
      if (size === 0) return false;
      const text = readFileSync(path.join(dir, f), "utf8");
      if (!text.trimEnd().endsWith("}")) return false;
      snap = text;
      unlinkSync(path.join(dir, f));
      return true;
    },
    60_000,
    "heap snapshot",
  );
  return snap;
}

/**
 * One transfer of `coin` to a fresh receiver up to its key update, then the erasure checked: neither s1, nor x1,
 * nor t2, nor the transfer key the receiver encrypted t2 to is anywhere in the enclave's memory (raw bytes
 * big- and little-endian: typed arrays and BigInt digits) or in its heap snapshot (hex and decimal strings).
 * Returns what the first run's replay checks need, and the copies found (none, or the test fails).
 */
async function transferAndErase(coin: TestCoin) {
  // s1 was drawn right after the coin's deposit id (public), the transfer key later, both from the seeded stream.
  const idAt = stream.indexOf(coin.depositId, streamAt, STREAM_SPAN);
  assert.ok(idAt >= 0, "the coin's deposit id is in the seeded stream");
  const S1 = secp256k1.Point.fromBytes(coin.S);
  const s1At = stream.find(idAt + coin.depositId.length, 4096, 48, (w) =>
    mulG((bytesToBigInt(w) % (N - 1n)) + 1n).equals(S1),
  );
  assert.ok(s1At >= 0, "s1 is recomputed from the seeded stream");
  const s1 = (bytesToBigInt(stream.slice(s1At, 48)) % (N - 1n)) + 1n;
  // The owner's Paillier primes (its key decrypts c_key = Enc(o1)): the enclave never had them.
  const primeNeedles = Object.fromEntries(
    (["p", "q"] as const).flatMap((k) => {
      const f = bigForms(bytesToBigInt(coin.key.paillier.secret[k]), 128);
      return [
        [`${k}be`, f.be],
        [`${k}le`, f.le],
      ];
    }),
  );

  const c2 = secret();
  const b2 = secret();
  const initBytes = signed(
    TransferSenderInitRequest,
    "TransferSenderInit",
    { statechainId: coin.id, receiverProofKey: pub(c2), receiverBackupKey: pub(b2), auth: undefined },
    coin.c,
  );
  const ti = await call("transferInit", { signedRequest: initBytes });
  assert.equal(ti.newOwnerIndex, coin.ownerIndex + 1);
  assert.equal(ti.backupLock, coin.initialLock - INTERVAL);
  const x1 = eciesDecrypt(coin.c, ti.encryptedX1);
  const receiverBackup = await cosign(
    coin,
    coin.c,
    SignPurpose.SIGN_PURPOSE_BACKUP,
    backupTx(coin, 2, pub(b2)),
  );
  const sctx = signTransfer(coin.c, coin.state, pub(c2), rng);

  const nonce1 = Buffer.from(rng(32));
  const tk = await call("transferKey", {
    signedRequest: signed(
      TransferReceiverInitRequest,
      "TransferReceiverInit",
      { statechainId: coin.id, receiverProofKey: pub(c2), nonce: nonce1, auth: undefined },
      c2,
    ),
  });
  const status = await call("getStatus", {});
  const trust = { roots: { aws: false, simulatorRootPem: status.simulatorRootPem } };
  const tkv = verifyAttestation(tk.attestationDocument, { ...trust, expectedNonce: nonce1 });
  assert.ok(tkv.valid, JSON.stringify(tkv.failures));
  const ctxStmt = decodeTransferKeyStatement(tk.transferContext);
  assert.equal(ctxStmt.epoch, 2);
  const transferKey = Buffer.from(tkv.document!.publicKey!);
  // The transfer key's secret: the 32 bytes of the stream whose public key the attestation document names.
  const tkAt = stream.find(
    s1At + 48,
    STREAM_SPAN,
    32,
    (w) => isScalarInRange(w) && Buffer.from(mulG(w).toBytes(true)).equals(transferKey),
  );
  assert.ok(tkAt >= 0, "the transfer key's secret is found in the seeded stream");
  streamAt = tkAt + 32;
  const tsk = bytesToBigInt(stream.slice(tkAt, 32));
  assert.ok(
    scanProcessMemory(proc.pid!, { s1be: scalarForms(s1).be, tskbe: scalarForms(tsk).be }).length === 2,
    "control: before the update s1 and the transfer key are in the enclave's memory, so the scan can see them",
  );

  const t1 = (parseScalar(coin.key.share, "o1") * bytesToBigInt(x1)) % N;
  const keyUpdate = async (t2: bigint, o2: bigint) => {
    const ks = Buffer.from(rng(16));
    // The receiver's own fresh Paillier key, with its proofs against the enclave's parameters.
    const share = holderKeyUpdate({
      sessionId: ks,
      share: scalarBytes(o2),
      sharedPublicKey: coin.P,
      paillier: await generatePaillierKey({ rng }),
      ringPedersen: view.ringPedersen,
      rng,
    });
    const nonce = Buffer.from(rng(32));
    const bytes = signed(
      TransferReceiverKeyUpdateRequest,
      "TransferReceiverKeyUpdate",
      {
        statechainId: coin.id,
        receiverProofKey: pub(c2),
        ownerShare: share.msg,
        encryptedT2: Buffer.from(eciesEncrypt(transferKey, scalarBytes(t2))),
        nonce,
        auth: undefined,
        keygenSessionId: ks,
      },
      c2,
    );
    return {
      bytes,
      share,
      nonce,
      res: () => call("keyUpdate", { signedRequest: bytes, statechainTx: sctx }),
    };
  };

  // A wrong t2 (s2·O2 ≠ P) is refused, and the old owner still co-signs: the old share was kept.
  const bad = await keyUpdate(bytesToBigInt(rng(31)) + 1n, bytesToBigInt(rng(31)) + 1n);
  await refused(bad.res(), 9, "ROTATION_MISMATCH");
  await cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, pub(coin.b)));

  const o2 = (bytesToBigInt(rng(32)) % (N - 1n)) + 1n;
  const t2 = (t1 * secp256k1.Point.Fn.inv(o2)) % N;
  const good = await keyUpdate(t2, o2);
  const upd = await good.res();
  const key2 = holderKeyUpdateFinish(good.share.state, upd.seShare);
  assert.ok(key2.sharedPublicKey.equals(secp256k1.Point.fromBytes(coin.P)), "the coin keeps its shared key");
  const v = verifyAttestation(upd.keyUpdate.attestationDocument, {
    ...trust,
    expectedNonce: good.nonce,
    receipt: upd.keyUpdate.receipt,
  });
  assert.ok(v.valid, JSON.stringify(v.failures));
  const receipt = decodeReceipt(upd.keyUpdate.receipt);
  assert.equal(receipt.type, "key-update");
  assert.equal(receipt.epoch, 2);
  assert.deepEqual(Buffer.from(receipt.S2!), Buffer.from(upd.seShare.publicShare));
  assert.deepEqual(Buffer.from(upd.stateHash), Buffer.from(nextState(sctx)));

  // Erasure: none of s1, x1, t2 and the transfer key is anywhere in the process, in either byte order.
  const erased = { s1, x1: bytesToBigInt(x1), t2, tsk };
  const found = scanProcessMemory(proc.pid!, {
    ...Object.fromEntries(Object.entries(erased).flatMap(([k, x]) => forms(k, x))),
    ...primeNeedles,
  });
  const copies = found.filter((h) => !(h.needle in primeNeedles)).map((h) => `${h.needle} in ${h.region}`);
  const primeCopies = found.filter((h) => h.needle in primeNeedles);
  // The V8 heap snapshot (strings and numbers) holds no hex or decimal form of them either.
  const snap = await heapSnapshot();
  for (const [name, x] of Object.entries(erased)) {
    if (snap.includes(x.toString(16))) copies.push(`${name} in hex in the heap snapshot`);
    if (snap.includes(x.toString())) copies.push(`${name} in decimal in the heap snapshot`);
  }
  return {
    copies,
    primeCopies,
    initBytes,
    receiverBackup,
    keyUpdate,
    good,
    upd,
    t2,
    o2,
    c2,
    b2,
    key2,
  };
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "enc-"));
  const policy = path.join(dir, "policy.json");
  writeFileSync(
    policy,
    JSON.stringify({
      initLock: INIT_LOCK,
      locktimeInterval: INTERVAL,
      lockSafetyMargin: 6,
      minFeeRateSatVb: 1,
    }),
  );
  const socket = path.join(dir, "e.sock");
  proc = spawn(
    process.execPath,
    [
      // As the host runs it in production (host/enclave-process.ts).
      ...ENCLAVE_NODE_FLAGS,
      "--heapsnapshot-signal=SIGUSR2",
      path.join(ROOT, "bin/enclave.js"),
      "--socket",
      socket,
      "--data-dir",
      dir,
      "--policy",
      policy,
      "--insecure-test-rng-seed",
      SEED.toString("hex"),
    ],
    { cwd: dir, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, ...ENCLAVE_ENV } },
  );
  client = connectEnclave(socket);
  await waitUntil(
    () => {
      try {
        return statSync(socket).isSocket();
      } catch {
        return false;
      }
    },
    20_000,
    "enclave socket",
  );
  await call("getStatus", {});
  const att = await call("getAttestation", { nonce: Buffer.from(rng(32)) });
  const identity = decodeIdentityStatement(att.identity);
  view = {
    ringPedersen: verifyRingPedersen(att.ringPedersen),
    instanceKey: instancePublicKey(identity.key),
  };
  coin0 = await depositCoin();
});

after(() => {
  client?.close();
  proc?.kill("SIGKILL");
});

describe("enclave over its socket", () => {
  test("it reports its identity, measurements and the (insecure test) policy it enforces", async () => {
    const st = await call("getStatus", {});
    assert.equal(st.attestationMode, "simulator");
    assert.match(st.pcr0, /^[0-9a-f]{96}$/);
    assert.ok(JSON.parse(st.policyJson).insecureTestRng, "a seeded RNG is visible in the attested policy");
    const nonce = Buffer.from(rng(32));
    const att = await call("getAttestation", { nonce });
    const simRoot = st.simulatorRootPem;
    const ok = verifyAttestation(att.document, {
      roots: { aws: false, simulatorRootPem: simRoot },
      expectedNonce: nonce,
    });
    assert.ok(ok.valid && ok.simulator, JSON.stringify(ok.failures));
    const aws = verifyAttestation(att.document, { expectedNonce: nonce });
    assert.equal(aws.valid, false);
    assert.equal(aws.checks["chain.root_pinned"], false, "a simulator document fails under the AWS root");
  });

  test("policy: every non-policy backup is refused with its reason", async () => {
    const coin = await depositCoin();
    const B = pub(coin.b);
    await refused(
      cosign(
        coin,
        coin.c,
        SignPurpose.SIGN_PURPOSE_BACKUP,
        backupTx(coin, 1, B, { lock: coin.initialLock - 1 }),
      ),
      3,
      "TX_LOCKTIME",
    );
    await refused(
      cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, B, { txid: rng(32) })),
      3,
      "TX_OUTPOINT",
    );
    await refused(
      cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, pub(secret()))),
      3,
      "TX_PAYEE",
    );
    const seq = bitcoin.Transaction.fromBuffer(Buffer.from(backupTx(coin, 1, B)));
    seq.ins[0]!.sequence = 0xffffffff;
    await refused(cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, seq.toBuffer()), 3, "TX_SEQUENCE");
    await refused(
      cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, B), { tip: 5 }),
      9,
      "CHAIN_TIP_REGRESSED",
    );
    await refused(cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_KICKOFF, backupTx(coin, 1, B)), 3, "TX_MODE");
    const w = buildWithdrawalTx({
      spend: { txid: coin.id.txid, vout: 0 },
      spendAmountSat: AMOUNT,
      withdrawScript: p2wpkhScript(B),
      feeRateSatVb: 2,
    });
    await refused(
      cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_WITHDRAWAL, w.raw),
      9,
      "WITHDRAW_NOT_STARTED",
    );
    await refused(
      cosign(coin, secret(), SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, B)),
      16,
      "AUTH_SIGNATURE",
    );
    // And the policy-conforming backup is co-signed.
    await cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, B));
  });

  test("transfer and key update: wrong t2 keeps the old share; the update erases s1, x1, t2 and the transfer key for real", async (t) => {
    const started = Date.now();
    const first = await transferAndErase(coin0);
    const copies = first.copies.map((c) => `run 1: ${c}`);
    primeHits = [...first.primeCopies];
    const coin = coin0;
    const { initBytes, receiverBackup, keyUpdate, good, upd, t2, o2, c2, b2, key2 } = first;

    // Replays by a host with everything it stored: nothing signs for the old owner any more.
    await refused(
      cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, pub(coin.b))),
      16,
      "AUTH_SIGNATURE",
    );
    await refused(call("transferInit", { signedRequest: initBytes }), 16, "AUTH_SIGNATURE");
    await refused(call("signSecond", { signedRequest: receiverBackup.secondBytes }), 16, "AUTH_SIGNATURE");
    const again = await keyUpdate(t2, o2);
    await refused(again.res(), 9, "NOT_RECEIVER");
    const replay = await good.res();
    assert.deepEqual(
      replay.keyUpdate.receipt,
      upd.keyUpdate.receipt,
      "the same key update request gets the same answer, not a second share",
    );

    // The new owner co-signs with the new share.
    const coin2: TestCoin = {
      ...coin,
      c: c2,
      b: b2,
      key: key2,
      ownerIndex: 2,
      state: Buffer.from(upd.stateHash),
      S: Buffer.from(upd.seShare.publicShare),
    };
    await cosign(coin2, c2, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin2, 2, pub(b2)));
    coinAfter = coin2;
    lastReceipt = upd.keyUpdate.receipt;

    // ERASURE_RUNS > 1: the same transfer, key update and scan again, each on a fresh coin.
    let clean = first.copies.length === 0 ? 1 : 0;
    for (let run = 2; run <= ERASURE_RUNS; run++) {
      const r = await transferAndErase(await depositCoin());
      copies.push(...r.copies.map((c) => `run ${run}: ${c}`));
      primeHits.push(...r.primeCopies);
      if (r.copies.length === 0) clean++;
      lastReceipt = r.upd.keyUpdate.receipt;
    }
    const summary = `${clean} of ${ERASURE_RUNS} erasure runs left no copy (${((Date.now() - started) / 1000).toFixed(1)} s)`;
    t.diagnostic(summary);
    assert.deepEqual(copies, [], `no copy of an erased secret remains in the enclave's memory: ${summary}`);
  });

  test("a c3 altered in transit is refused by the owner before it decrypts; the enclave co-signs on (it holds no taint)", async () => {
    const coin = await depositCoin();
    await assert.rejects(
      cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, pub(coin.b)), {
        tamper: (p) => {
          const c3 = Buffer.from(p.partialSignature);
          c3[c3.length - 1]! ^= 1;
          p.partialSignature = c3;
        },
      }),
      (e: Error & { code?: string }) => e.code === "PARTIAL_STATEMENT_INVALID",
    );
    assert.equal(coin.key.tainted, false, "nothing was decrypted: the owner's key is not tainted");
    await cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 1, pub(coin.b)));
    const list = await call("listStatechains", { pageAfter: Buffer.alloc(0), pageSize: 100 });
    const entry = list.statechains.find(
      (s: { statechainId?: Outpoint }) =>
        s.statechainId && Buffer.from(s.statechainId.txid).equals(Buffer.from(coin.id.txid)),
    );
    assert.equal(entry.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE);
  });

  // The owner holds the Paillier key (DESIGN.md 3.1): no prime of it ever reaches the enclave, before or after a
  // key update (audit #18.3 found 10–22 copies of the enclave's own primes when the enclave was the holder).
  test("the enclave's memory holds no copy of the owners' Paillier primes", () => {
    assert.ok(primeHits, "the key update test ran and scanned for the primes");
    assert.deepEqual(primeHits, [], "a copy of an owner's Paillier prime is in the enclave's memory");
  });

  test("withdrawal needs the current owner's WITHDRAW; the share is erased once it is confirmed", async () => {
    const coin = coinAfter!;
    const dest = p2wpkhScript(pub(secret()));
    const forged = signWithdraw(secret(), coin.state, dest, rng);
    await refused(
      call("withdrawInit", {
        signedRequest: signed(
          WithdrawInitRequest,
          "WithdrawInit",
          { statechainId: coin.id, statechainTx: forged, auth: undefined },
          coin.c,
        ),
      }),
      16,
      "STATECHAIN_SIGNATURE",
    );
    const sctx = signWithdraw(coin.c, coin.state, dest, rng);
    await refused(
      call("withdrawInit", {
        signedRequest: signed(
          WithdrawInitRequest,
          "WithdrawInit",
          { statechainId: coin.id, statechainTx: sctx, auth: undefined },
          secret(),
        ),
      }),
      16,
      "AUTH_SIGNATURE",
    );
    await call("withdrawInit", {
      signedRequest: signed(
        WithdrawInitRequest,
        "WithdrawInit",
        { statechainId: coin.id, statechainTx: sctx, auth: undefined },
        coin.c,
      ),
    });
    const elsewhere = buildWithdrawalTx({
      spend: { txid: coin.id.txid, vout: 0 },
      spendAmountSat: AMOUNT,
      withdrawScript: p2wpkhScript(pub(secret())),
      feeRateSatVb: 2,
    });
    await refused(cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_WITHDRAWAL, elsewhere.raw), 3, "TX_PAYEE");
    const w = buildWithdrawalTx({
      spend: { txid: coin.id.txid, vout: 0 },
      spendAmountSat: AMOUNT,
      withdrawScript: dest,
      feeRateSatVb: 2,
    });
    await cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_WITHDRAWAL, w.raw);
    await refused(
      call("closeStatechain", { statechainId: coin.id, withdrawalTxid: Buffer.from(rng(32)) }),
      9,
      "WITHDRAW_TXID",
    );
    const closed = await call("closeStatechain", {
      statechainId: coin.id,
      withdrawalTxid: Buffer.from(w.txid),
    });
    const erasure = decodeReceipt(closed.erasure.receipt);
    assert.equal(erasure.type, "erasure");
    const chain = verifyReceiptChain([lastReceipt!, closed.erasure.receipt]);
    assert.ok(chain.valid, JSON.stringify(chain.failures));
    await refused(
      cosign(coin, coin.c, SignPurpose.SIGN_PURPOSE_BACKUP, backupTx(coin, 2, pub(coin.b))),
      5,
      "UNKNOWN_STATECHAIN",
    );
  });

  test("a backup whose lock is too close to the tip is refused (and the tip never goes back)", async () => {
    const late = await depositCoin();
    const raw = backupTx(late, 1, pub(late.b));
    await refused(
      cosign(late, late.c, SignPurpose.SIGN_PURPOSE_BACKUP, raw, { tip: late.initialLock - 3 }),
      9,
      "BACKUP_LOCK_TOO_SOON",
    );
    await refused(
      cosign(late, late.c, SignPurpose.SIGN_PURPOSE_BACKUP, raw, { tip: TIP }),
      9,
      "CHAIN_TIP_REGRESSED",
    );
  });
});
