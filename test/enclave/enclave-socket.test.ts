// The enclave through its real gRPC Unix socket, as a (possibly compromised) host sees it: keygen, co-signing
// under the policy, transfer and key update, erasure checked in the process's memory, replays, a c3 altered in
// transit, withdrawal and closing. The owner is the Paillier holder (DESIGN.md 3.1): the enclave's memory holds
// no Paillier secret at any time.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
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
import { decrypt as eciesDecrypt, encrypt as eciesEncrypt } from "../../protocol/ecies.ts";
import { bytesToBigInt, G, N, parseScalar, pointBytes, scalarBytes } from "../../protocol/encoding.ts";
import { seededTestRng, systemRng } from "../../protocol/rng.ts";
import { initialState, nextState, signTransfer, signWithdraw } from "../../protocol/statechain.ts";
import { buildBackupTx, buildWithdrawalTx } from "../../protocol/tx/build.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { bip143Digest } from "../../protocol/tx/sign.ts";
import { bigForms, scalarForms, scanProcessMemory } from "../helpers/memory.ts";
import { ROOT, waitUntil } from "../helpers/se-process.ts";

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
/** The enclave's first deposit: its s1 is drawn near the start of the seeded stream. */
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

  test("transfer and key update: wrong t2 keeps the old share; the update erases s1, x1 and t2 for real", async () => {
    // The first coin of this enclave: its s1 was drawn right after the deposit id, from the seeded stream.
    const stream = seededTestRng(SEED)(4096);
    const coin = coin0;
    const S1 = secp256k1.Point.fromBytes(coin.S);
    let s1: bigint | undefined;
    for (let i = 0; i + 48 <= stream.length && s1 === undefined; i++) {
      const s = (bytesToBigInt(stream.subarray(i, i + 48)) % (N - 1n)) + 1n;
      if (G.multiply(s).equals(S1)) s1 = s;
    }
    assert.ok(s1, "s1 is recomputed from the seeded stream");
    const s1Forms = scalarForms(s1);
    assert.ok(
      scanProcessMemory(proc.pid!, { s1be: s1Forms.be }).length > 0,
      "control: before the update the share is in the enclave's memory, so the scan can see it",
    );
    // The owner's Paillier primes (its key decrypts c_key = Enc(o1)): the enclave never had them.
    const { p, q } = {
      p: bytesToBigInt(coin.key.paillier.secret.p),
      q: bytesToBigInt(coin.key.paillier.secret.q),
    };
    const primeForms = { p: bigForms(p, 128), q: bigForms(q, 128) };

    const c2 = secret();
    const b2 = secret();
    const initBytes = signed(
      TransferSenderInitRequest,
      "TransferSenderInit",
      { statechainId: coin.id, receiverProofKey: pub(c2), receiverBackupKey: pub(b2), auth: undefined },
      coin.c,
    );
    const ti = await call("transferInit", { signedRequest: initBytes });
    assert.equal(ti.newOwnerIndex, 2);
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
    const transferKey = tkv.document!.publicKey!;

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
    assert.ok(
      key2.sharedPublicKey.equals(secp256k1.Point.fromBytes(coin.P)),
      "the coin keeps its shared key",
    );
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

    // Erasure: neither s1 (big-endian bytes or BigInt digits), nor x1, nor t2 is anywhere in the process.
    const t2Forms = scalarForms(t2);
    const hits = scanProcessMemory(proc.pid!, {
      s1be: s1Forms.be,
      s1le: s1Forms.le,
      x1: Buffer.from(x1),
      t2be: t2Forms.be,
      t2le: t2Forms.le,
    });
    primeHits = scanProcessMemory(
      proc.pid!,
      Object.fromEntries(
        Object.entries(primeForms).flatMap(([k, f]) => [
          [`${k}be`, f.be],
          [`${k}le`, f.le],
        ]),
      ),
    );
    assert.deepEqual(hits, [], "no copy of an erased secret remains in the enclave's memory");
    // The V8 heap snapshot (strings and numbers) holds no hex or decimal form of them either.
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
        return true;
      },
      60_000,
      "heap snapshot",
    );
    for (const [name, x] of [
      ["s1", s1],
      ["t2", t2],
      ["x1", bytesToBigInt(x1)],
    ] as const) {
      assert.ok(
        !snap.includes(x.toString(16)) && !snap.includes(x.toString()),
        `${name} appears in the heap snapshot`,
      );
    }

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
