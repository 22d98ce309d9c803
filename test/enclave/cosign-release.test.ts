// The co-signing rules of audit #18 against the real Enclave class, driven in process with owner-signed requests
// exactly as the host forwards them: a signing session is checked again when the enclave releases its part
// (#18.1, #18.2), one kick-off per coin (#18.1), the transfer-key statement names the kick-off, the receiver's
// one backup, the share to erase and the policy (#18.1, #18.2, #18.13), backups obey the policy's fee ceiling
// (#18.4) and the kick-off's confirmation height (#18.9), the chain tip cannot leap (#18.12), and the transfer key
// answers nothing before the request's signature checks (#18.13).
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as bitcoin from "bitcoinjs-lib";
import { decodeDocument } from "../../attestation/document.ts";
import { SimulatorProvider } from "../../attestation/providers/simulator.ts";
import { SimulatorCa } from "../../attestation/sim-ca.ts";
import { decodeTransferKeyStatement } from "../../attestation/statements.ts";
import { ActionLog } from "../../enclave/log.ts";
import { measure } from "../../enclave/measure.ts";
import { type EnclavePolicy, parsePolicy, policyHash } from "../../enclave/policy.ts";
import { Enclave } from "../../enclave/service.ts";
import { type Outpoint, SignPurpose } from "../../proto/gen/common.ts";
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
import { type Authenticated, type Codec, signRequest } from "../../protocol/auth.ts";
import {
  type HolderKey,
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderKeyUpdate,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
} from "../../protocol/ecdsa2p/holder.ts";
import { generatePaillierKey } from "../../protocol/ecdsa2p/paillier.ts";
import { decrypt as eciesDecrypt, encrypt as eciesEncrypt } from "../../protocol/ecies.ts";
import { bytesToBigInt, N, parseScalar, pointBytes, scalarBytes } from "../../protocol/encoding.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { systemRng } from "../../protocol/rng.ts";
import { initialState, signTransfer, signWithdraw } from "../../protocol/statechain.ts";
import { buildBackupTx, buildKickoffTx } from "../../protocol/tx/build.ts";
import { parseTx, txidOf } from "../../protocol/tx/parse.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { bip143Digest } from "../../protocol/tx/sign.ts";
import { ownerViewOf, testInstanceKeys } from "../helpers/owners.ts";

const SVC = "/statechain.v1.StatechainService/";
const rng = systemRng;
const TIP = 100;
const AMOUNT = 1_000_000n;
const secret = () => Buffer.from(secp256k1.utils.randomSecretKey());
const pub = (sk: Uint8Array) => Buffer.from(secp256k1.getPublicKey(sk, true));
const caDir = mkdtempSync(path.join(tmpdir(), "cosign-"));
const ca = SimulatorCa.open(caDir);
const pcrs = measure();
const instance = testInstanceKeys();
const view = ownerViewOf(instance);

/** The owners' clock, moved with the enclave's when a test lets time pass. */
let ownerSkewMs = 0;

function signed<T extends Authenticated>(codec: Codec<T>, method: string, req: T, sk: Uint8Array): Buffer {
  return Buffer.from(
    codec
      .encode(signRequest(codec, SVC + method, req, sk, { nowMs: Date.now() + ownerSkewMs, rng }))
      .finish(),
  );
}

/** An enclave with `policy` over the defaults, and a clock the test moves. */
function enclave(policy: Partial<EnclavePolicy> = {}) {
  const clock = { now: Date.now() };
  const p = parsePolicy({ initLock: 100, locktimeInterval: 10, lockSafetyMargin: 6, ...policy });
  const e = new Enclave({
    policy: p,
    provider: new SimulatorProvider({ ca, pcrs }),
    instance,
    log: new ActionLog(),
    rng,
    now: () => clock.now,
    instanceId: Buffer.from(rng(16)),
    pcrs,
    simulatorRootPem: ca.rootPem(),
    version: "test",
  });
  return { e, clock, policy: p };
}

interface Coin {
  id: Outpoint;
  P: Buffer;
  c: Buffer;
  b: Buffer;
  key: HolderKey;
  initialLock: number;
  mode: "absolute" | "kickoff";
}

async function deposit(e: Enclave, mode: "absolute" | "kickoff" = "absolute"): Promise<Coin> {
  const c = secret();
  const b = secret();
  const keygenSessionId = Buffer.from(rng(16));
  const h1 = holderKeyGenCommit({
    sessionId: keygenSessionId,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: view.ringPedersen,
    rng,
  });
  const init = await e.keyGenInit({
    signedRequest: signed(
      DepositInitRequest,
      "DepositInit",
      { proofKey: pub(c), guard: undefined, auth: undefined, holderCommit: h1.msg, keygenSessionId },
      c,
    ),
  });
  const { key, msg } = holderKeyGenFinish(h1.state, init.seShare!, { rng });
  await e.keyGenFinish({
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
  const bound = await e.bindFunding({
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
    chainTip: TIP,
  });
  return { id: bound.statechainId!, P, c, b, key, initialLock: bound.initialLock, mode };
}

/** SignFirst only: returns the owner's half-open session, to finish (SignSecond) later. */
async function open(
  e: Enclave,
  coin: Coin,
  purpose: SignPurpose,
  raw: Uint8Array,
  spendAmount: bigint,
  chain: { tip?: number; kickoffHeight?: number } = {},
) {
  const digest = bip143Digest(raw, 0, coin.P, spendAmount);
  const sessionId = Buffer.from(rng(16));
  const { state, msg } = holderSignCommit(coin.key, { sessionId, digest, rng });
  const first = await e.signFirst({
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
      coin.c,
    ),
    chainTip: chain.tip ?? TIP,
    kickoffHeight: chain.kickoffHeight ?? 0,
  });
  let opening: ReturnType<typeof holderSignNonce> | undefined;
  return {
    /** SignSecond, signed by the owner (or by `signer`: the coin's owner by then, when it has changed). */
    finish: async (signer: Uint8Array = coin.c) => {
      opening ??= holderSignNonce(coin.key, state, first.seNonce!, { rng });
      const second = await e.signSecond({
        signedRequest: signed(
          SignSecondRequest,
          "SignSecond",
          { statechainId: coin.id, sessionId, ownerNonce: opening, auth: undefined },
          signer,
        ),
      });
      const out = holderSignFinish(coin.key, state, second.sePartial!, { instanceKey: view.instanceKey });
      if (!out.ok) throw new Error(out.reason);
      return out.signature;
    },
  };
}

async function cosign(e: Enclave, coin: Coin, purpose: SignPurpose, raw: Uint8Array, spendAmount: bigint) {
  return (await open(e, coin, purpose, raw, spendAmount)).finish();
}

function kickoff(coin: Coin, feeRateSatVb = 2) {
  return buildKickoffTx({ outpoint: coin.id, amountSat: AMOUNT, sharedPublicKey: coin.P, feeRateSatVb });
}

function backup(
  coin: Coin,
  owner: number,
  payee: Uint8Array,
  opts: { feeRateSatVb?: number; kickoff?: { txid: Uint8Array; outputAmountSat: bigint } } = {},
) {
  const lock = coin.initialLock - (owner - 1) * 10;
  return buildBackupTx({
    mode: coin.mode,
    spend: opts.kickoff ? { txid: opts.kickoff.txid, vout: 0 } : coin.id,
    spendAmountSat: opts.kickoff ? opts.kickoff.outputAmountSat : AMOUNT,
    backupKey: payee,
    lock,
    feeRateSatVb: opts.feeRateSatVb ?? 2,
  });
}

async function transferInit(e: Enclave, coin: Coin, to: { c: Buffer; b: Buffer }) {
  return e.transferInit({
    signedRequest: signed(
      TransferSenderInitRequest,
      "TransferSenderInit",
      { statechainId: coin.id, receiverProofKey: pub(to.c), receiverBackupKey: pub(to.b), auth: undefined },
      coin.c,
    ),
  });
}

function transferKey(e: Enclave, coin: Coin, receiverProofKey: Uint8Array, signer: Uint8Array) {
  return e.transferKey({
    signedRequest: signed(
      TransferReceiverInitRequest,
      "TransferReceiverInit",
      {
        statechainId: coin.id,
        receiverProofKey: Buffer.from(receiverProofKey),
        nonce: Buffer.from(rng(32)),
        auth: undefined,
      },
      signer,
    ),
  });
}

async function refusedWith(p: Promise<unknown>, code: string | RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${err}`);
    if (typeof code === "string") assert.equal(err.code, code, err.message);
    else assert.match(err.code, code, err.message);
    return true;
  });
}

const person = () => ({ c: secret(), b: secret() });

test("#18.2: a backup session opened for one receiver releases nothing once the transfer is redirected", async () => {
  const { e } = enclave();
  const coin = await deposit(e);
  await cosign(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup(coin, 1, pub(coin.b)).raw, AMOUNT);
  const decoy = person();
  const real = person();
  await transferInit(e, coin, decoy);
  // The sender's own backup key sits at the decoy's place: a backup at owner 2's lock that pays the sender.
  const stale = await open(
    e,
    coin,
    SignPurpose.SIGN_PURPOSE_BACKUP,
    backup(coin, 2, pub(decoy.b)).raw,
    AMOUNT,
  );
  await transferInit(e, coin, real);
  await refusedWith(stale.finish(), /^(SESSION_STALE|UNKNOWN_SESSION)$/);
  // Nothing was co-signed for the real receiver: no transfer key for it yet.
  await refusedWith(transferKey(e, coin, pub(real.c), real.c), "BACKUP_MISSING");
  const mine = backup(coin, 2, pub(real.b));
  await cosign(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, mine.raw, AMOUNT);
  const tk = await transferKey(e, coin, pub(real.c), real.c);
  const st = decodeTransferKeyStatement(tk.transferContext);
  assert.deepEqual(
    Buffer.from(st.backup),
    Buffer.from(mine.txid),
    "the statement names the receiver's backup",
  );
  assert.equal(st.kickoff, null);
  // A second, different backup for the same receiver is refused: the receiver is shown exactly one.
  await refusedWith(
    open(
      e,
      coin,
      SignPurpose.SIGN_PURPOSE_BACKUP,
      backup(coin, 2, pub(real.b), { feeRateSatVb: 3 }).raw,
      AMOUNT,
    ),
    "RECEIVER_BACKUP_SIGNED",
  );
});

test("#18.2: any change of the pending transfer voids an open backup session", async () => {
  const { e } = enclave();
  const coin = await deposit(e);
  const rx = person();
  await transferInit(e, coin, rx);
  const s = await open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup(coin, 2, pub(rx.b)).raw, AMOUNT);
  await transferInit(e, coin, person()); // any change of the pending transfer
  await refusedWith(s.finish(), /^(SESSION_STALE|UNKNOWN_SESSION)$/);
});

test("#18.2: a backup session opened for the pending receiver releases nothing once a withdrawal has started", async () => {
  const { e } = enclave();
  const coin = await deposit(e);
  const rx = person();
  await transferInit(e, coin, rx);
  const s = await open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup(coin, 2, pub(rx.b)).raw, AMOUNT);
  const dest = p2wpkhScript(pub(secret()));
  await e.withdrawInit({
    signedRequest: signed(
      WithdrawInitRequest,
      "WithdrawInit",
      {
        statechainId: coin.id,
        statechainTx: signWithdraw(coin.c, initialState(pub(coin.c)), dest, rng),
        auth: undefined,
      },
      coin.c,
    ),
  });
  // The withdrawal voided the session (its nonce is wiped): no c3 for it. The release's re-check would refuse it
  // too (WITHDRAWING: no backup once a withdrawal started); the refusal asked for here is the voiding's own.
  await refusedWith(s.finish(), /^(SESSION_STALE|UNKNOWN_SESSION)$/);
});

test("#18.2: a backup session opened for the pending receiver releases nothing once the key update is done", async () => {
  const { e } = enclave();
  const coin = await deposit(e);
  const rx = person();
  const ti = await transferInit(e, coin, rx);
  const mine = backup(coin, 2, pub(rx.b));
  await cosign(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, mine.raw, AMOUNT);
  // A second session for that same backup (allowed: the receiver is still shown that one txid), left open.
  const s = await open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, mine.raw, AMOUNT);

  // The receiver's key update: t2 = o1·x1·o2⁻¹ under its attested transfer key; the coin is the receiver's now.
  const tk = await transferKey(e, coin, pub(rx.c), rx.c);
  const transferPublicKey = decodeDocument(tk.attestationDocument).publicKey!;
  const x1 = bytesToBigInt(eciesDecrypt(coin.c, ti.encryptedX1));
  const o2 = (bytesToBigInt(rng(32)) % (N - 1n)) + 1n;
  const t2 = (((parseScalar(coin.key.share, "o1") * x1) % N) * secp256k1.Point.Fn.inv(o2)) % N;
  const keygenSessionId = Buffer.from(rng(16));
  const share = holderKeyUpdate({
    sessionId: keygenSessionId,
    share: scalarBytes(o2),
    sharedPublicKey: coin.P,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: view.ringPedersen,
    rng,
  });
  await e.keyUpdate({
    signedRequest: signed(
      TransferReceiverKeyUpdateRequest,
      "TransferReceiverKeyUpdate",
      {
        statechainId: coin.id,
        receiverProofKey: pub(rx.c),
        ownerShare: share.msg,
        encryptedT2: Buffer.from(eciesEncrypt(transferPublicKey, scalarBytes(t2))),
        nonce: Buffer.from(rng(32)),
        auth: undefined,
        keygenSessionId,
      },
      rx.c,
    ),
    statechainTx: signTransfer(coin.c, initialState(pub(coin.c)), pub(rx.c), rng),
  });

  // The old owner can no longer sign requests for the coin; the new owner (or a host holding its signature)
  // finishing the old session gets nothing either: the key update voided it. (Without that, the session would
  // pass every re-check: the backup pays the new owner's backup key at its own lock.)
  await refusedWith(s.finish(), /^AUTH_/);
  await refusedWith(s.finish(rx.c), /^(SESSION_STALE|UNKNOWN_SESSION)$/);
});

test("#18.1: one kick-off per coin: a second KICKOFF session is refused while one is open, and the statement names it", async () => {
  const { e } = enclave({ backupMode: "kickoff", initLock: 100 });
  const coin = await deposit(e, "kickoff");
  const a = kickoff(coin, 2);
  const b = kickoff(coin, 3);
  assert.notDeepEqual(Buffer.from(a.txid), Buffer.from(b.txid));
  const sa = await open(e, coin, SignPurpose.SIGN_PURPOSE_KICKOFF, a.raw, AMOUNT);
  await refusedWith(open(e, coin, SignPurpose.SIGN_PURPOSE_KICKOFF, b.raw, AMOUNT), "KICKOFF_SESSION_OPEN");
  await sa.finish();
  await refusedWith(open(e, coin, SignPurpose.SIGN_PURPOSE_KICKOFF, b.raw, AMOUNT), "KICKOFF_ALREADY_SIGNED");
  await cosign(
    e,
    coin,
    SignPurpose.SIGN_PURPOSE_BACKUP,
    backup(coin, 1, pub(coin.b), { kickoff: a }).raw,
    a.outputAmountSat,
  );
  const rx = person();
  await transferInit(e, coin, rx);
  const mine = backup(coin, 2, pub(rx.b), { kickoff: a });
  await cosign(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, mine.raw, a.outputAmountSat);
  const st = decodeTransferKeyStatement((await transferKey(e, coin, pub(rx.c), rx.c)).transferContext);
  assert.deepEqual(
    Buffer.from(st.kickoff!),
    Buffer.from(a.txid),
    "the statement names the recorded kick-off",
  );
  assert.deepEqual(Buffer.from(st.backup), Buffer.from(mine.txid));
});

test("#18.1: a backup session opened before the kick-off was recorded releases nothing", async () => {
  const { e } = enclave({ backupMode: "kickoff", initLock: 100 });
  const coin = await deposit(e, "kickoff");
  const a = kickoff(coin);
  // A backup session can only be opened once a kick-off is recorded: so it is checked again at release instead.
  const sa = await open(e, coin, SignPurpose.SIGN_PURPOSE_KICKOFF, a.raw, AMOUNT);
  await sa.finish();
  const s = await open(
    e,
    coin,
    SignPurpose.SIGN_PURPOSE_BACKUP,
    backup(coin, 1, pub(coin.b), { kickoff: a }).raw,
    a.outputAmountSat,
  );
  const rx = person();
  await transferInit(e, coin, rx); // the coin's state changes while the session is open
  await refusedWith(s.finish(), /^(SESSION_STALE|UNKNOWN_SESSION)$/);
});

test("#18.9: in kick-off mode a backup is refused when the confirmed kick-off leaves it maturing too soon", async () => {
  const { e } = enclave({ backupMode: "kickoff", initLock: 30 });
  const coin = await deposit(e, "kickoff");
  const a = kickoff(coin);
  await cosign(e, coin, SignPurpose.SIGN_PURPOSE_KICKOFF, a.raw, AMOUNT);
  const raw = backup(coin, 1, pub(coin.b), { kickoff: a }).raw;
  // Kick-off confirmed at 80: owner 1's backup (relative lock 30) matures at 110, not above tip 105 + margin 6.
  await refusedWith(
    open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, raw, a.outputAmountSat, { tip: 105, kickoffHeight: 80 }),
    "BACKUP_LOCK_TOO_SOON",
  );
  await open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, raw, a.outputAmountSat, {
    tip: 105,
    kickoffHeight: 100,
  });
});

test("#18.4: the enclave co-signs no backup above its backup fee-rate ceiling", async () => {
  const { e } = enclave({ maxBackupFeeRateSatVb: 100 });
  const coin = await deposit(e);
  await refusedWith(
    open(
      e,
      coin,
      SignPurpose.SIGN_PURPOSE_BACKUP,
      backup(coin, 1, pub(coin.b), { feeRateSatVb: 150 }).raw,
      AMOUNT,
    ),
    "TX_FEE_HIGH",
  );
  await cosign(
    e,
    coin,
    SignPurpose.SIGN_PURPOSE_BACKUP,
    backup(coin, 1, pub(coin.b), { feeRateSatVb: 90 }).raw,
    AMOUNT,
  );
});

test("#18.12: an implausible jump of the chain tip is refused and not recorded", async () => {
  const { e, clock } = enclave({ tipSlackBlocks: 20, tipBlocksPerHour: 30 });
  const coin = await deposit(e); // tip 100 recorded
  const raw = backup(coin, 1, pub(coin.b)).raw;
  await refusedWith(
    open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, raw, AMOUNT, { tip: 500_000_000 }),
    "CHAIN_TIP_IMPLAUSIBLE",
  );
  await refusedWith(
    open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, raw, AMOUNT, { tip: 121 }),
    "CHAIN_TIP_IMPLAUSIBLE",
  );
  // Within the slack now, and further once time has passed; the bogus tip left nothing behind.
  await open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, raw, AMOUNT, { tip: 110 });
  clock.now += 2 * 3_600_000;
  ownerSkewMs = 2 * 3_600_000;
  await open(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, raw, AMOUNT, { tip: 185 });
  assert.equal((await e.getStatus()).maxChainTip, 185);
  ownerSkewMs = 0;
});

test("#18.13: the transfer key checks the request's signature before saying whether the key is the receiver's", async () => {
  const { e } = enclave();
  const coin = await deposit(e);
  const rx = person();
  await transferInit(e, coin, rx);
  await cosign(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup(coin, 2, pub(rx.b)).raw, AMOUNT);
  const forger = secret();
  // Naming the real receiver and naming anyone else, signed by neither: the same refusal, so no oracle.
  await refusedWith(transferKey(e, coin, pub(rx.c), forger), /^(AUTH_|REQUEST_)|SIGNATURE/);
  await refusedWith(transferKey(e, coin, pub(secret()), forger), /^(AUTH_|REQUEST_)|SIGNATURE/);
  const other = secret();
  await refusedWith(transferKey(e, coin, pub(other), other), "NOT_RECEIVER");
  const tk = await transferKey(e, coin, pub(rx.c), rx.c);
  const st = decodeTransferKeyStatement(tk.transferContext);
  assert.equal(st.share.length, 33, "the statement names the share the key update will erase");
});

test("the transfer-key statement names the attested policy", async () => {
  const { e, policy } = enclave();
  const coin = await deposit(e);
  const rx = person();
  await transferInit(e, coin, rx);
  await cosign(e, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup(coin, 2, pub(rx.b)).raw, AMOUNT);
  const st = decodeTransferKeyStatement((await transferKey(e, coin, pub(rx.c), rx.c)).transferContext);
  assert.deepEqual(Buffer.from(st.policy), policyHash(policy));
  assert.deepEqual(Buffer.from(txidOf(parseTx(backup(coin, 2, pub(rx.b)).raw))), Buffer.from(st.backup));
});
