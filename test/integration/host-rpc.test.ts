// Every public RPC through the real processes: a coin's whole life (deposit, transfer, withdrawal) driven by the
// wallet flows, and at each step, in the state that step runs in, the ways a request can be wrong: malformed or
// oversized fields, points off the curve, wrong signatures, wrong state, unknown statechain, replays. Each is
// answered with its status code and leaves every host-owned table as it was. Then the metrics the run produced
// and the logs it wrote (which must not contain a single secret of the test's owners).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as bitcoin from "bitcoinjs-lib";
import {
  confirmDeposit,
  confirmWithdrawal,
  deposit,
  type OwnedCoin,
  pub,
  randomSecret,
  send,
  withdraw,
} from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import type { MethodName } from "../../client/se-client.ts";
import { IDEMPOTENT } from "../../host/api/index.ts";
import { SignPurpose, StatechainStatus, StatechainTxKind } from "../../proto/gen/common.ts";
import { N } from "../../protocol/encoding.ts";
import { leadingZeroBits, powDigest, solvePow } from "../../protocol/pow.ts";
import { systemRng } from "../../protocol/rng.ts";
import { signTransfer, signWithdraw } from "../../protocol/statechain.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { fundedWallet, newIdentity } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import {
  encodeResponse,
  METHODS,
  type Req,
  rawCall,
  refused,
  type Step,
  signAs,
} from "../host/support/calls.ts";
import { type SteppingHarness, steppingHarness } from "../host/support/coins.ts";
import { assertNoDbChange } from "../host/support/db-snapshot.ts";

const C = status;
/** The public port's message limit in this test (above the 64 KiB mailbox limit, so that check is reachable). */
const MAX_MESSAGE = 256 * 1024;
let se: SeProcess;
let h: SteppingHarness;
const endpoint = () => `127.0.0.1:${se.port}`;

/** A compressed encoding whose x has no point on secp256k1. */
function offCurve(): Buffer {
  for (let x = 1n; ; x++) {
    const b = Buffer.concat([Buffer.from([2]), Buffer.from(x.toString(16).padStart(64, "0"), "hex")]);
    try {
      secp256k1.Point.fromBytes(b);
    } catch {
      return b;
    }
  }
}
const OFF_CURVE = offCurve();
const stranger = randomSecret(systemRng);
/** Every secret of the test's owners, in hex, copied when made (wallets may wipe their buffers later). */
const secrets = new Map<string, string>();
const keep = (name: string, b: Uint8Array) => secrets.set(name, Buffer.from(b).toString("hex"));
const keepCoin = (name: string, c: OwnedCoin) => {
  keep(`${name} proof key`, c.proofSecret);
  keep(`${name} backup key`, c.backupSecret);
  keep(`${name} key share`, c.key.share);
};
keep("stranger", stranger);
const unknownId = { txid: Buffer.alloc(32, 7), vout: 0 };

// Probes run before (or after) a given call of the owner flows; "method" is its first call, "method#n" its n-th.
type Probe = (step: Step) => Promise<void>;
const before_ = new Map<string, Probe>();
const after_ = new Map<string, Probe>();
const probed: string[] = [];

function take(map: Map<string, Probe>, step: Step): Probe | undefined {
  for (const key of [`${step.method}#${step.occurrence}`, step.occurrence === 1 ? step.method : ""]) {
    const p = map.get(key);
    if (p) {
      map.delete(key);
      return p;
    }
  }
  return undefined;
}

/** Sends `req` as is and expects a refusal with `code`, with no change to any host-owned table. */
async function expectRefusal<M extends MethodName>(
  what: string,
  method: M,
  req: Req<M>,
  code: number,
  message?: RegExp,
): Promise<void> {
  await assertNoDbChange(se.dataDir, what, () => refused(h.client.send(method, req), code, message));
  probed.push(`${method}: ${what}`);
}

/** The step's request with `change` applied, signed by `signer` (the step's own signer by default; null: unsigned). */
function variant<M extends MethodName>(
  method: M,
  step: Step,
  change: Partial<Req<M>> = {},
  signer: Uint8Array | null = step.signer ?? null,
): Req<M> {
  const req = { ...(step.request as object), ...change } as Req<M>;
  assert.equal(step.method, method);
  return signer ? signAs(method, req, signer) : req;
}

/** An exact replay: an idempotent step answers with its stored result, any other signed call is refused. */
async function replay(step: Step, res: unknown): Promise<void> {
  await assertNoDbChange(se.dataDir, `${step.method} replayed`, async () => {
    if (IDEMPOTENT.has(step.method)) {
      const again = await h.client.send(step.method, step.sent as never);
      assert.deepEqual(
        encodeResponse(step.method, again as never),
        encodeResponse(step.method, res as never),
        `${step.method}: a replay answers with the stored result`,
      );
    } else if (step.signer) {
      await refused(h.client.send(step.method, step.sent as never), C.UNAUTHENTICATED, /replay/);
    }
  });
  probed.push(`${step.method}: exact replay`);
}

/** Opens a deposit of a fresh proof key (proof of work and DepositInit), for probes that spend its state. */
async function openDeposit(): Promise<{ secret: Buffer; depositId: Buffer }> {
  const secret = randomSecret(systemRng);
  const ch = await h.client.send("getDepositChallenge", {});
  const solution = Buffer.from(solvePow(ch.challenge, pub(secret), ch.difficultyBits));
  const init = await h.client.send(
    "depositInit",
    signAs(
      "depositInit",
      {
        proofKey: pub(secret),
        guard: { $case: "pow", value: { challenge: ch.challenge, solution } },
        auth: undefined,
        holderCommit: { commitment: Buffer.from(systemRng(32)) },
        keygenSessionId: Buffer.from(systemRng(16)),
      },
      secret,
    ),
  );
  return { secret, depositId: init.depositId };
}

before(async () => {
  se = await startSeProcess({
    env: {
      SE_MAINSTAY_INTERVAL_S: "1",
      SE_INIT_LOCK: "200",
      SE_LOG_LEVEL: "trace",
      SE_GRPC_MAX_MESSAGE_BYTES: String(MAX_MESSAGE),
    },
  });
  h = await steppingHarness(se);
  h.client.around = async (step, sendIt) => {
    await take(before_, step)?.(step);
    const res = await sendIt();
    if (step.signer) await replay(step, res);
    await take(after_, step)?.(step);
    return res;
  };
});
after(async () => {
  h?.close();
  await se?.stop();
});

test("every method answers bytes that are not its message with INVALID_ARGUMENT and oversized messages with RESOURCE_EXHAUSTED", async () => {
  // Field 1, length-delimited, announcing 5 bytes and carrying 1: no protobuf decoder accepts it.
  const truncated = Buffer.from([0x0a, 0x05, 0x01]);
  const huge = Buffer.alloc(MAX_MESSAGE + 64, 0x0a);
  await assertNoDbChange(se.dataDir, "malformed and oversized requests", async () => {
    for (const method of METHODS) {
      await refused(rawCall(endpoint(), method, truncated), C.INVALID_ARGUMENT, /not a valid/);
      await refused(rawCall(endpoint(), method, huge), C.RESOURCE_EXHAUSTED);
    }
  });
});

test("information: statechain lookups, attestation nonces, deposit challenges", async () => {
  const api = h.client.current;
  const info = await api.call("getInfo", {});
  assert.equal(info.network, "regtest");
  assert.equal(info.initLock, 200);
  assert.ok(info.mainstay?.enabled, "GetInfo says Mainstay publication is enabled");
  assert.match(info.mainstay.url, /^http:\/\/127\.0\.0\.1:\d+/, "the local Mainstay service's address");
  for (const method of ["getStatechain", "getSmtProof"] as const) {
    await refused(api.call(method, { statechainId: unknownId }), C.NOT_FOUND, /no statechain/);
    await refused(api.call(method, { statechainId: undefined }), C.INVALID_ARGUMENT, /missing/);
    await refused(
      api.call(method, { statechainId: { txid: Buffer.alloc(31), vout: 0 } }),
      C.INVALID_ARGUMENT,
      /32 bytes/,
    );
  }
  for (const n of [0, 15, 65, 4096]) {
    await refused(
      api.call("getAttestation", { nonce: Buffer.alloc(n, 1) }),
      C.INVALID_ARGUMENT,
      /16 to 64 bytes/,
    );
  }
  const att = await api.call("getAttestation", { nonce: Buffer.alloc(16, 1) });
  assert.ok(
    att.document.length > 1000,
    `the attestation document is more than 1000 bytes (${att.document.length})`,
  );
  const ch = await api.call("getDepositChallenge", {});
  assert.equal(ch.difficultyBits, info.depositGuard === "pow" ? 12 : 0);
});

describe("a coin's life with every step's failures probed in its state", () => {
  let coin1: OwnedCoin;
  let coin2: OwnedCoin;
  const id2 = newIdentity();

  test("deposit", async () => {
    before_.set("depositInit", async (s) => {
      await expectRefusal(
        "unsigned",
        "depositInit",
        variant("depositInit", s, {}, null),
        C.UNAUTHENTICATED,
        /not signed/,
      );
      await expectRefusal(
        "signed by another key",
        "depositInit",
        variant("depositInit", s, {}, stranger),
        C.UNAUTHENTICATED,
      );
      const req = s.request as Req<"depositInit">;
      await expectRefusal(
        "signed for another method",
        "depositInit",
        signAs("depositInit", req, s.signer!, { path: "/statechain.v1.StatechainService/DepositKeyGen" }),
        C.UNAUTHENTICATED,
        /does not verify/,
      );
      await expectRefusal(
        "signed 10 minutes ago",
        "depositInit",
        signAs("depositInit", req, s.signer!, { nowMs: Date.now() - 600_000 }),
        C.UNAUTHENTICATED,
        /from the server's clock/,
      );
      await expectRefusal(
        "auth nonce of 65 bytes",
        "depositInit",
        signAs("depositInit", req, s.signer!, { nonce: Buffer.alloc(65, 3) }),
        C.UNAUTHENTICATED,
        /nonce must be 16 to 64 bytes/,
      );
      await expectRefusal(
        "proof key off the curve",
        "depositInit",
        variant("depositInit", s, { proofKey: OFF_CURVE }),
        C.INVALID_ARGUMENT,
        /not on secp256k1/,
      );
      await expectRefusal(
        "proof key of 34 bytes",
        "depositInit",
        variant("depositInit", s, { proofKey: Buffer.concat([req.proofKey, Buffer.alloc(1)]) }),
        C.INVALID_ARGUMENT,
        /33-byte/,
      );
      await expectRefusal(
        "no proof of work",
        "depositInit",
        variant("depositInit", s, { guard: undefined }),
        C.UNAUTHENTICATED,
        /proof of work/,
      );
      const pow = req.guard!.$case === "pow" ? req.guard!.value : undefined;
      assert.ok(pow, "the deposit request carries a proof of work");
      const forged = Buffer.from(pow.challenge);
      forged[forged.length - 1]! ^= 1;
      await expectRefusal(
        "a challenge the SE never issued",
        "depositInit",
        variant("depositInit", s, {
          guard: { $case: "pow", value: { challenge: forged, solution: pow.solution } },
        }),
        C.UNAUTHENTICATED,
        /not issued by this SE/,
      );
      let weak = Buffer.alloc(8);
      for (let i = 1; leadingZeroBits(powDigest(pow.challenge, req.proofKey, weak)) >= 12; i++)
        weak = Buffer.from(`${i}`.padStart(8, "0"));
      await expectRefusal(
        "too little work",
        "depositInit",
        variant("depositInit", s, {
          guard: { $case: "pow", value: { challenge: pow.challenge, solution: weak } },
        }),
        C.INVALID_ARGUMENT,
        /leading zero bits/,
      );
    });
    after_.set("depositInit", async (s) => {
      await expectRefusal(
        "its proof of work spent again in a fresh request",
        "depositInit",
        variant("depositInit", s),
        C.UNAUTHENTICATED,
        /already used/,
      );
    });
    before_.set("depositKeyGen", async (s) => {
      const req = s.request as Req<"depositKeyGen">;
      await expectRefusal(
        "an unknown deposit",
        "depositKeyGen",
        variant("depositKeyGen", s, { depositId: Buffer.alloc(16, 9) }),
        C.NOT_FOUND,
        /no deposit/,
      );
      await expectRefusal(
        "a deposit id of 17 bytes",
        "depositKeyGen",
        variant("depositKeyGen", s, { depositId: Buffer.alloc(17, 9) }),
        C.INVALID_ARGUMENT,
        /16 bytes/,
      );
      await expectRefusal(
        "signed by another key",
        "depositKeyGen",
        variant("depositKeyGen", s, {}, stranger),
        C.UNAUTHENTICATED,
      );
      await expectRefusal(
        "no owner share",
        "depositKeyGen",
        variant("depositKeyGen", s, { ownerShare: undefined }),
        C.INVALID_ARGUMENT,
        /owner share/,
      );
      // The enclave spends a deposit's keygen state on its first owner share, valid or not: a throwaway deposit.
      const other = await openDeposit();
      await expectRefusal(
        "owner share off the curve",
        "depositKeyGen",
        signAs(
          "depositKeyGen",
          { ...req, depositId: other.depositId, ownerShare: { ...req.ownerShare!, publicShare: OFF_CURVE } },
          other.secret,
        ),
        C.INVALID_ARGUMENT,
        /INVALID_POINT/,
      );
    });
    after_.set("depositKeyGen", async (s) => {
      await expectRefusal(
        "a second key generation",
        "depositKeyGen",
        variant("depositKeyGen", s),
        C.FAILED_PRECONDITION,
        /already complete/,
      );
    });
    before_.set("depositFund", async (s) => {
      const req = s.request as Req<"depositFund">;
      const tx = bitcoin.Transaction.fromBuffer(req.fundingTx);
      const withOut = (f: (o: { script: Uint8Array; value: bigint }) => void) => {
        const t = tx.clone();
        f(t.outs[req.vout]!);
        return Buffer.from(t.toBuffer());
      };
      await expectRefusal(
        "a funding tx that does not parse",
        "depositFund",
        variant("depositFund", s, { fundingTx: Buffer.from("not a transaction") }),
        C.INVALID_ARGUMENT,
        /does not parse/,
      );
      await expectRefusal(
        "a missing output",
        "depositFund",
        variant("depositFund", s, { vout: 7 }),
        C.INVALID_ARGUMENT,
        /no output 7/,
      );
      await expectRefusal(
        "an output to another key",
        "depositFund",
        variant("depositFund", s, {
          fundingTx: withOut((o) => {
            o.script = p2wpkhScript(pub(stranger));
          }),
        }),
        C.INVALID_ARGUMENT,
        /does not pay P2WPKH of the shared key/,
      );
      await expectRefusal(
        "an amount below the minimum",
        "depositFund",
        variant("depositFund", s, {
          fundingTx: withOut((o) => {
            o.value = 5_000n;
          }),
        }),
        C.INVALID_ARGUMENT,
        /outside/,
      );
      await expectRefusal(
        "a backup key off the curve",
        "depositFund",
        variant("depositFund", s, { backupKey: OFF_CURVE }),
        C.INVALID_ARGUMENT,
        /INVALID_POINT/,
      );
      await expectRefusal(
        "signed by another key",
        "depositFund",
        variant("depositFund", s, {}, stranger),
        C.UNAUTHENTICATED,
      );
      // A second deposit, opened but never keyed, cannot bind a funding transaction.
      const other = await openDeposit();
      await expectRefusal(
        "a deposit whose key generation is not done",
        "depositFund",
        signAs("depositFund", { ...req, depositId: other.depositId }, other.secret),
        C.FAILED_PRECONDITION,
        /finish key generation/,
      );
    });
    after_.set("depositFund", async (s) => {
      await expectRefusal(
        "binding a second time",
        "depositFund",
        variant("depositFund", s),
        C.FAILED_PRECONDITION,
        /already bound/,
      );
    });
    before_.set("signFirst", async (s) => {
      const req = s.request as Req<"signFirst">;
      const tx = bitcoin.Transaction.fromBuffer(req.tx);
      tx.locktime += 1;
      await expectRefusal(
        "an unknown statechain",
        "signFirst",
        variant("signFirst", s, { statechainId: unknownId }),
        C.NOT_FOUND,
        /no statechain/,
      );
      await expectRefusal(
        "a txid of 31 bytes",
        "signFirst",
        variant("signFirst", s, { statechainId: { txid: Buffer.alloc(31), vout: 0 } }),
        C.INVALID_ARGUMENT,
      );
      await expectRefusal(
        "no purpose",
        "signFirst",
        variant("signFirst", s, { purpose: SignPurpose.SIGN_PURPOSE_UNSPECIFIED }),
        C.INVALID_ARGUMENT,
        /purpose/,
      );
      await expectRefusal(
        "a transaction that does not parse",
        "signFirst",
        variant("signFirst", s, { tx: Buffer.alloc(40, 1) }),
        C.INVALID_ARGUMENT,
        /does not parse/,
      );
      await expectRefusal(
        "an input that does not exist",
        "signFirst",
        variant("signFirst", s, { inputIndex: 5 }),
        C.INVALID_ARGUMENT,
        /no input 5/,
      );
      await expectRefusal(
        "no nonce commitment",
        "signFirst",
        variant("signFirst", s, { ownerCommit: undefined }),
        C.INVALID_ARGUMENT,
        /commitment/,
      );
      await expectRefusal(
        "signed by another key",
        "signFirst",
        variant("signFirst", s, {}, stranger),
        C.UNAUTHENTICATED,
      );
      await expectRefusal(
        "a backup with another locktime",
        "signFirst",
        variant("signFirst", s, { tx: Buffer.from(tx.toBuffer()) }),
        C.INVALID_ARGUMENT,
        /lock/,
      );
      await expectRefusal(
        "a withdrawal before WithdrawInit",
        "signFirst",
        variant("signFirst", s, { purpose: SignPurpose.SIGN_PURPOSE_WITHDRAWAL }),
        C.FAILED_PRECONDITION,
        /WithdrawInit/,
      );
    });
    before_.set("signSecond", async (s) => {
      await expectRefusal(
        "an unknown session",
        "signSecond",
        variant("signSecond", s, { sessionId: Buffer.alloc(16, 5) }),
        C.NOT_FOUND,
        /no signing session/,
      );
      await expectRefusal(
        "a session id of 15 bytes",
        "signSecond",
        variant("signSecond", s, { sessionId: Buffer.alloc(15, 5) }),
        C.INVALID_ARGUMENT,
        /16 bytes/,
      );
      await expectRefusal(
        "no nonce opening",
        "signSecond",
        variant("signSecond", s, { ownerNonce: undefined }),
        C.INVALID_ARGUMENT,
        /nonce opening/,
      );
      await expectRefusal(
        "signed by another key",
        "signSecond",
        variant("signSecond", s, {}, stranger),
        C.UNAUTHENTICATED,
      );
    });
    after_.set("signSecond", async (s) => {
      await expectRefusal(
        "a finished session again",
        "signSecond",
        variant("signSecond", s),
        C.FAILED_PRECONDITION,
        /released already/,
      );
    });
    before_.set("signComplete", async (s) => {
      const req = s.request as Req<"signComplete">;
      await expectRefusal(
        "a signature of 63 bytes",
        "signComplete",
        variant("signComplete", s, { signature: Buffer.from(req.signature).subarray(1) }),
        C.INVALID_ARGUMENT,
        /64 bytes/,
      );
      const flipped = Buffer.from(req.signature);
      flipped[40]! ^= 1;
      await expectRefusal(
        "a signature that does not verify under P",
        "signComplete",
        variant("signComplete", s, { signature: flipped }),
        C.INVALID_ARGUMENT,
        /does not verify/,
      );
      await expectRefusal(
        "an unknown session",
        "signComplete",
        variant("signComplete", s, { sessionId: Buffer.alloc(16, 5) }),
        C.NOT_FOUND,
        /no signing session/,
      );
    });
    after_.set("signComplete", async (s) => {
      // The same signature with s replaced by n − s also satisfies the ECDSA equation: it is refused (low-S only).
      const req = s.request as Req<"signComplete">;
      const sig = Buffer.from(req.signature);
      const high = (N - BigInt(`0x${sig.subarray(32).toString("hex")}`)).toString(16).padStart(64, "0");
      await expectRefusal(
        "the high-S twin of the signature",
        "signComplete",
        variant("signComplete", s, {
          signature: Buffer.concat([sig.subarray(0, 32), Buffer.from(high, "hex")]),
        }),
        C.INVALID_ARGUMENT,
        /does not verify|low-S/,
      );
    });
    before_.set("depositConfirm", async (s) => {
      const req = s.request as Req<"depositConfirm">;
      await expectRefusal(
        "an unknown statechain",
        "depositConfirm",
        variant("depositConfirm", s, { statechainId: unknownId }),
        C.NOT_FOUND,
      );
      await expectRefusal(
        "signed by another key",
        "depositConfirm",
        variant("depositConfirm", s, {}, stranger),
        C.UNAUTHENTICATED,
      );
      await expectRefusal(
        "a transfer before the deposit confirmed",
        "transferSenderInit",
        signAs(
          "transferSenderInit",
          {
            statechainId: req.statechainId,
            receiverProofKey: id2.address.proofKey,
            receiverBackupKey: id2.address.backupKey,
            auth: undefined,
          },
          s.signer!,
        ),
        C.FAILED_PRECONDITION,
        /awaiting confirmation/,
      );
    });

    const wallet = await fundedWallet(h.chain);
    keep("wallet key", wallet.privateKey);
    coin1 = await deposit(h.ctx, { amountSat: 400_000n, utxos: wallet.utxos, changeScript: wallet.script });
    keepCoin("owner 1", coin1);
    await confirmDeposit(h.ctx, coin1, { onWait: async () => void (await h.chain.mine(1)) });
    assert.deepEqual([...before_.keys(), ...after_.keys()], [], "every deposit probe ran");
  });

  test("transfer", async () => {
    assert.ok(coin1, "the deposit test stored the coin to transfer");
    const sc = () => coin1.statechainId;
    before_.set("transferSenderInit", async (s) => {
      await expectRefusal(
        "an unknown statechain",
        "transferSenderInit",
        variant("transferSenderInit", s, { statechainId: unknownId }),
        C.NOT_FOUND,
      );
      await expectRefusal(
        "signed by the receiver",
        "transferSenderInit",
        variant("transferSenderInit", s, {}, id2.proofSecret),
        C.UNAUTHENTICATED,
      );
      await expectRefusal(
        "a receiver proof key off the curve",
        "transferSenderInit",
        variant("transferSenderInit", s, { receiverProofKey: OFF_CURVE }),
        C.INVALID_ARGUMENT,
        /receiver proof key is not on secp256k1/,
      );
      await expectRefusal(
        "a receiver backup key of 32 bytes",
        "transferSenderInit",
        variant("transferSenderInit", s, { receiverBackupKey: Buffer.alloc(32, 2) }),
        C.INVALID_ARGUMENT,
        /receiver backup key must be a 33-byte/,
      );
      await expectRefusal(
        "a transfer to oneself",
        "transferSenderInit",
        variant("transferSenderInit", s, { receiverProofKey: pub(coin1.proofSecret) }),
        C.INVALID_ARGUMENT,
        /current owner's/,
      );
      const sctx = signTransfer(coin1.proofSecret, Buffer.alloc(32), id2.address.proofKey, systemRng);
      await expectRefusal(
        "a hand-over before TransferSenderInit",
        "transferSend",
        signAs(
          "transferSend",
          { statechainId: sc(), statechainTx: sctx, encryptedMessage: Buffer.alloc(10), auth: undefined },
          coin1.proofSecret,
        ),
        C.FAILED_PRECONDITION,
        /cannot hand over the coin: the statechain is active/,
      );
      await expectRefusal(
        "a receiver's init before any transfer",
        "transferReceiverInit",
        signAs(
          "transferReceiverInit",
          {
            statechainId: sc(),
            receiverProofKey: id2.address.proofKey,
            nonce: Buffer.alloc(32),
            auth: undefined,
          },
          id2.proofSecret,
        ),
        C.FAILED_PRECONDITION,
        /active/,
      );
    });
    before_.set("transferSend", async (s) => {
      const req = s.request as Req<"transferSend">;
      const sctx = req.statechainTx!;
      const badSig = Buffer.from(sctx.signature);
      badSig[0]! ^= 1;
      await expectRefusal(
        "no statechain transaction",
        "transferSend",
        variant("transferSend", s, { statechainTx: undefined }),
        C.INVALID_ARGUMENT,
        /TRANSFER/,
      );
      await expectRefusal(
        "a WITHDRAW statechain transaction",
        "transferSend",
        variant("transferSend", s, {
          statechainTx: { ...sctx, kind: StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW },
        }),
        C.INVALID_ARGUMENT,
        /must be a TRANSFER/,
      );
      await expectRefusal(
        "a statechain transaction to someone else",
        "transferSend",
        variant("transferSend", s, {
          statechainTx: signTransfer(coin1.proofSecret, sctx.previousState, pub(stranger), systemRng),
        }),
        C.INVALID_ARGUMENT,
        /pending receiver/,
      );
      await expectRefusal(
        "a statechain transaction with a broken signature",
        "transferSend",
        variant("transferSend", s, { statechainTx: { ...sctx, signature: badSig } }),
        C.UNAUTHENTICATED,
        /does not verify/,
      );
      await expectRefusal(
        "an empty transfer message",
        "transferSend",
        variant("transferSend", s, { encryptedMessage: Buffer.alloc(0) }),
        C.INVALID_ARGUMENT,
        /1 to 65536 bytes/,
      );
      await expectRefusal(
        "a transfer message over the mailbox limit",
        "transferSend",
        variant("transferSend", s, { encryptedMessage: Buffer.alloc(65537, 1) }),
        C.RESOURCE_EXHAUSTED,
        /1 to 65536 bytes/,
      );
      await expectRefusal(
        "signed by another key",
        "transferSend",
        variant("transferSend", s, {}, stranger),
        C.UNAUTHENTICATED,
      );
      await expectRefusal(
        "the receiver's init before the hand-over",
        "transferReceiverInit",
        signAs(
          "transferReceiverInit",
          {
            statechainId: sc(),
            receiverProofKey: id2.address.proofKey,
            nonce: Buffer.alloc(32),
            auth: undefined,
          },
          id2.proofSecret,
        ),
        C.FAILED_PRECONDITION,
        /not handed over/,
      );
    });
    before_.set("mailboxGet", async (s) => {
      await expectRefusal(
        "a proof key off the curve",
        "mailboxGet",
        variant("mailboxGet", s, { receiverProofKey: OFF_CURVE }),
        C.INVALID_ARGUMENT,
      );
      await expectRefusal("unsigned", "mailboxGet", variant("mailboxGet", s, {}, null), C.UNAUTHENTICATED);
      await expectRefusal(
        "read by the sender",
        "mailboxGet",
        variant("mailboxGet", s, {}, coin1.proofSecret),
        C.UNAUTHENTICATED,
      );
      const req = s.request as Req<"mailboxGet">;
      const entry = (signer: Uint8Array) =>
        signAs("mailboxGet", { ...req }, signer, {
          path: "/statechain.v1.StatechainService/MailboxGetBatch",
        });
      await expectRefusal(
        "an empty batch",
        "mailboxGetBatch",
        { mailboxes: [] },
        C.INVALID_ARGUMENT,
        /1 to 64/,
      );
      await expectRefusal(
        "a batch entry signed by the sender",
        "mailboxGetBatch",
        { mailboxes: [entry(coin1.proofSecret)] },
        C.UNAUTHENTICATED,
        /mailbox entry 0/,
      );
      await expectRefusal(
        "a batch entry signed as a MailboxGet",
        "mailboxGetBatch",
        { mailboxes: [variant("mailboxGet", s)] },
        C.UNAUTHENTICATED,
        /mailbox entry 0/,
      );
    });
    before_.set("transferReceiverInit", async (s) => {
      const other = newIdentity();
      await expectRefusal(
        "an unknown statechain",
        "transferReceiverInit",
        variant("transferReceiverInit", s, { statechainId: unknownId }),
        C.NOT_FOUND,
      );
      await expectRefusal(
        "a proof key the transfer is not for",
        "transferReceiverInit",
        variant("transferReceiverInit", s, { receiverProofKey: other.address.proofKey }, other.proofSecret),
        C.FAILED_PRECONDITION,
        /no transfer to this proof key/,
      );
      await expectRefusal(
        "signed by the sender",
        "transferReceiverInit",
        variant("transferReceiverInit", s, {}, coin1.proofSecret),
        C.UNAUTHENTICATED,
      );
      for (const n of [15, 65])
        await expectRefusal(
          `an attestation nonce of ${n} bytes`,
          "transferReceiverInit",
          variant("transferReceiverInit", s, { nonce: Buffer.alloc(n, 1) }),
          C.INVALID_ARGUMENT,
          /16 to 64 bytes/,
        );
    });
    before_.set("transferReceiverKeyUpdate", async (s) => {
      // The answer of a key update, for the owner it made: not for anyone else, and none for a depositor.
      const result = (signer: Uint8Array, statechainId = sc()) =>
        signAs("getKeyUpdateResult", { statechainId, proofKey: pub(signer), auth: undefined }, signer);
      await expectRefusal("asked by a stranger", "getKeyUpdateResult", result(stranger), C.UNAUTHENTICATED);
      await expectRefusal(
        "an unknown statechain",
        "getKeyUpdateResult",
        result(coin1.proofSecret, unknownId),
        C.NOT_FOUND,
      );
      await expectRefusal(
        "asked by the depositor, whom no key update made the owner",
        "getKeyUpdateResult",
        result(coin1.proofSecret),
        C.NOT_FOUND,
        /no key update answer/,
      );
      // Recovery (#22): only the key asked about may ask, with a well-formed key and a fresh signature.
      const recover = (key: Uint8Array, signer: Uint8Array, opts?: { nowMs: number }) =>
        signAs("recoverCoins", { proofKey: Buffer.from(key), auth: undefined }, signer, opts);
      await expectRefusal(
        "recovery for the depositor's key signed by a stranger",
        "recoverCoins",
        recover(pub(coin1.proofSecret), stranger),
        C.UNAUTHENTICATED,
      );
      await expectRefusal(
        "recovery for a 32-byte key",
        "recoverCoins",
        recover(Buffer.alloc(32, 2), coin1.proofSecret),
        C.INVALID_ARGUMENT,
        /33-byte/,
      );
      await expectRefusal(
        "recovery for a key off the curve",
        "recoverCoins",
        recover(Buffer.concat([Buffer.from([2]), Buffer.alloc(32, 0xff)]), coin1.proofSecret),
        C.INVALID_ARGUMENT,
      );
      await expectRefusal(
        "recovery signed an hour ago",
        "recoverCoins",
        recover(pub(coin1.proofSecret), coin1.proofSecret, { nowMs: Date.now() - 3_600_000 }),
        C.UNAUTHENTICATED,
      );
      await expectRefusal(
        "an encrypted t2 of 257 bytes",
        "transferReceiverKeyUpdate",
        variant("transferReceiverKeyUpdate", s, { encryptedT2: Buffer.alloc(257, 1) }, id2.proofSecret),
        C.INVALID_ARGUMENT,
        /1 to 256 bytes/,
      );
      await expectRefusal(
        "no owner share",
        "transferReceiverKeyUpdate",
        variant("transferReceiverKeyUpdate", s, { ownerShare: undefined }, id2.proofSecret),
        C.INVALID_ARGUMENT,
        /owner share/,
      );
      await expectRefusal(
        "an attestation nonce of 8 bytes",
        "transferReceiverKeyUpdate",
        variant("transferReceiverKeyUpdate", s, { nonce: Buffer.alloc(8, 1) }, id2.proofSecret),
        C.INVALID_ARGUMENT,
        /16 to 64 bytes/,
      );
      await expectRefusal(
        "signed by the sender",
        "transferReceiverKeyUpdate",
        variant("transferReceiverKeyUpdate", s, {}, coin1.proofSecret),
        C.UNAUTHENTICATED,
      );
      await expectRefusal(
        "a t2 no transfer key decrypts",
        "transferReceiverKeyUpdate",
        variant("transferReceiverKeyUpdate", s, { encryptedT2: Buffer.alloc(120, 1) }, id2.proofSecret),
        C.INVALID_ARGUMENT,
        /T2_DECRYPT/,
      );
    });
    after_.set("transferReceiverKeyUpdate", async () => {
      await expectRefusal(
        "the sender starting another transfer",
        "transferSenderInit",
        signAs(
          "transferSenderInit",
          {
            statechainId: sc(),
            receiverProofKey: pub(stranger),
            receiverBackupKey: pub(stranger),
            auth: undefined,
          },
          coin1.proofSecret,
        ),
        C.UNAUTHENTICATED,
      );
    });

    await send(h.ctx, coin1, id2.address);
    const [incoming] = await fetchIncoming(h.ctx, id2);
    coin2 = await receive(h.ctx, id2, incoming!);
    keepCoin("owner 2", coin2);
    assert.equal(coin2.ownerIndex, 2);
    assert.deepEqual([...before_.keys(), ...after_.keys()], [], "every transfer probe ran");
  });

  test("withdrawal", async () => {
    assert.ok(coin2, "the transfer test stored the receiver's coin");
    const dest = p2wpkhScript(newIdentity().address.proofKey);
    before_.set("withdrawInit", async (s) => {
      const req = s.request as Req<"withdrawInit">;
      const sctx = req.statechainTx!;
      await expectRefusal(
        "a TRANSFER statechain transaction",
        "withdrawInit",
        variant("withdrawInit", s, {
          statechainTx: { ...sctx, kind: StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER },
        }),
        C.INVALID_ARGUMENT,
        /must be a WITHDRAW/,
      );
      for (const script of [Buffer.alloc(0), Buffer.alloc(65, 0x51)])
        await expectRefusal(
          `a withdrawal script of ${script.length} bytes`,
          "withdrawInit",
          variant("withdrawInit", s, { statechainTx: { ...sctx, withdrawScript: script } }),
          C.INVALID_ARGUMENT,
          /1 to 64 bytes/,
        );
      await expectRefusal(
        "signed by the previous owner",
        "withdrawInit",
        variant("withdrawInit", s, {}, coin1.proofSecret),
        C.UNAUTHENTICATED,
        /signed by owner 1, who transferred the coin: owner 2 holds it now/,
      );
      await expectRefusal(
        "signed by a stranger",
        "withdrawInit",
        variant("withdrawInit", s, {}, stranger),
        C.UNAUTHENTICATED,
        /does not verify under the proof key/,
      );
      await expectRefusal(
        "a confirmation before any withdrawal",
        "withdrawConfirm",
        signAs(
          "withdrawConfirm",
          { statechainId: coin2.statechainId, withdrawalTx: Buffer.alloc(0), auth: undefined },
          coin2.proofSecret,
        ),
        C.FAILED_PRECONDITION,
        /active/,
      );
    });
    after_.set("withdrawInit", async (s) => {
      const req = s.request as Req<"withdrawInit">;
      const other = signWithdraw(
        coin2.proofSecret,
        req.statechainTx!.previousState,
        p2wpkhScript(pub(stranger)),
        systemRng,
      );
      await expectRefusal(
        "a second, different withdrawal",
        "withdrawInit",
        variant("withdrawInit", s, { statechainTx: other }),
        C.FAILED_PRECONDITION,
        /different withdrawal/,
      );
    });
    before_.set("signFirst#3", async (s) => {
      await expectRefusal(
        "a backup once the withdrawal started",
        "signFirst",
        variant("signFirst", s, { purpose: SignPurpose.SIGN_PURPOSE_BACKUP }),
        C.FAILED_PRECONDITION,
        /withdrawal has started/,
      );
    });
    before_.set("withdrawConfirm", async (s) => {
      await expectRefusal(
        "a transaction that does not parse",
        "withdrawConfirm",
        variant("withdrawConfirm", s, { withdrawalTx: Buffer.alloc(30, 2) }),
        C.INVALID_ARGUMENT,
        /does not parse/,
      );
      await expectRefusal(
        "another transaction than the co-signed one",
        "withdrawConfirm",
        variant("withdrawConfirm", s, { withdrawalTx: coin2.fundingTx }),
        C.INVALID_ARGUMENT,
        /not the withdrawal transaction/,
      );
      await expectRefusal(
        "an unknown statechain",
        "withdrawConfirm",
        variant("withdrawConfirm", s, { statechainId: unknownId }),
        C.NOT_FOUND,
      );
      await expectRefusal(
        "signed by another key",
        "withdrawConfirm",
        variant("withdrawConfirm", s, {}, stranger),
        C.UNAUTHENTICATED,
      );
    });

    await withdraw(h.ctx, coin2, dest);
    await confirmWithdrawal(h.ctx, coin2, { onWait: async () => void (await h.chain.mine(1)) });
    assert.deepEqual([...before_.keys(), ...after_.keys()], [], "every withdrawal probe ran");

    const sc = await h.client.current.call("getStatechain", { statechainId: coin2.statechainId });
    assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_CLOSED);
    for (const [method, req] of [
      [
        "transferSenderInit",
        {
          statechainId: coin2.statechainId,
          receiverProofKey: pub(stranger),
          receiverBackupKey: pub(stranger),
          auth: undefined,
        },
      ],
      ["withdrawInit", { statechainId: coin2.statechainId, statechainTx: undefined, auth: undefined }],
    ] as const) {
      await expectRefusal(
        "on a closed statechain",
        method,
        signAs(method, req as never, coin2.proofSecret),
        C.FAILED_PRECONDITION,
        /closed/,
      );
    }
  });

  test("every RPC was probed", () => {
    const methods = new Set(probed.map((p) => p.split(":")[0]));
    for (const m of METHODS.filter(
      (m) =>
        !["getInfo", "getStatechain", "getSmtProof", "getAttestation", "getDepositChallenge"].includes(m),
    ))
      assert.ok(methods.has(m), `${m} was probed`);
    assert.ok(probed.length > 80, `${probed.length} probes`);
  });
});

describe("transfers that do not finish", () => {
  let coin: OwnedCoin;
  before(async () => {
    h.client.around = (_step, sendIt) => sendIt();
    const wallet = await fundedWallet(h.chain);
    coin = await deposit(h.ctx, { amountSat: 300_000n, utxos: wallet.utxos, changeScript: wallet.script });
    keepCoin("owner A", coin);
    await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
  });

  test("the coin is handed over only once the receiver's backup is co-signed", async () => {
    const r = newIdentity();
    await h.client.send(
      "transferSenderInit",
      signAs(
        "transferSenderInit",
        {
          statechainId: coin.statechainId,
          receiverProofKey: r.address.proofKey,
          receiverBackupKey: r.address.backupKey,
          auth: undefined,
        },
        coin.proofSecret,
      ),
    );
    const sc = await h.client.send("getStatechain", { statechainId: coin.statechainId });
    const sctx = signTransfer(coin.proofSecret, sc.stateHash, r.address.proofKey, systemRng);
    await expectRefusal(
      "a hand-over before the receiver's backup",
      "transferSend",
      signAs(
        "transferSend",
        {
          statechainId: coin.statechainId,
          statechainTx: sctx,
          encryptedMessage: Buffer.alloc(100, 1),
          auth: undefined,
        },
        coin.proofSecret,
      ),
      C.FAILED_PRECONDITION,
      /co-sign the receiver's backup/,
    );
  });

  test("a sender whose receiver vanished after the hand-over can still withdraw; the receiver then cannot finish", async () => {
    const r = newIdentity();
    keep("vanished receiver proof key", r.proofSecret);
    await send(h.ctx, coin, r.address);
    const [incoming] = await fetchIncoming(h.ctx, r);
    assert.ok(incoming, "the hand-over reached the receiver's mailbox");
    await withdraw(h.ctx, coin, p2wpkhScript(pub(randomSecret(systemRng))));
    await confirmWithdrawal(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
    const sc = await h.client.send("getStatechain", { statechainId: coin.statechainId });
    assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_CLOSED);
    assert.deepEqual(await fetchIncoming(h.ctx, r), [], "the abandoned hand-over left the mailbox");
    await expectRefusal(
      "the receiver's key after the sender withdrew",
      "transferReceiverInit",
      signAs(
        "transferReceiverInit",
        {
          statechainId: coin.statechainId,
          receiverProofKey: r.address.proofKey,
          nonce: Buffer.alloc(32, 1),
          auth: undefined,
        },
        r.proofSecret,
      ),
      C.FAILED_PRECONDITION,
      /closed/,
    );
  });
});

test("metrics: request counters by method and code move, latencies, enclave health, statechains by state", async () => {
  const url = String(se.info.metrics);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const scrape = async () => {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
    return res.text();
  };
  const value = (text: string, series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  const before = await scrape();
  await h.client.send("getInfo", {});
  await refused(h.client.send("getStatechain", { statechainId: unknownId }), C.NOT_FOUND);
  const after = await scrape();
  const ok = 'se_requests_total{code="OK",method="GetInfo"}';
  const nf = 'se_requests_total{code="NOT_FOUND",method="GetStatechain"}';
  assert.equal(value(after, ok), (value(before, ok) ?? 0) + 1);
  assert.equal(value(after, nf), (value(before, nf) ?? 0) + 1);
  assert.ok(
    (value(after, 'se_requests_total{code="INVALID_ARGUMENT",method="DepositInit"}') ?? 0) >= 3,
    "the metrics count at least 3 refused DepositInit requests",
  );
  assert.ok(
    (value(after, 'se_requests_total{code="UNAUTHENTICATED",method="SignFirst"}') ?? 0) >= 1,
    "the metrics count at least 1 unauthenticated SignFirst",
  );
  assert.ok(
    (value(after, 'se_requests_total{code="OK",method="TransferReceiverKeyUpdate"}') ?? 0) >= 1,
    "the metrics count at least 1 successful TransferReceiverKeyUpdate",
  );
  assert.ok(
    (value(after, 'se_request_seconds_count{method="GetInfo"}') ?? 0) >= 2,
    "the metrics time at least 2 GetInfo requests",
  );
  assert.ok(
    after.includes('se_request_seconds_bucket{method="GetInfo",le="+Inf"}'),
    "the GetInfo latency histogram has its +Inf bucket",
  );
  assert.equal(value(after, "se_enclave_up{}"), 1);
  assert.ok((value(after, "se_chain_height{}") ?? 0) > 432, "the metrics report a chain height above 432");
  assert.equal(value(after, 'se_statechains{state="STATECHAIN_STATUS_CLOSED"}'), 2);
  assert.equal(value(after, 'se_statechains{state="STATECHAIN_STATUS_ACTIVE"}'), undefined);
  const other = await fetch(url.replace("/metrics", "/other"));
  assert.equal(other.status, 404);
});

test("the logs of the whole run (host at trace level, enclave) hold none of the owners' secrets", () => {
  const { stdout, stderr } = se.output();
  const lines = stdout.split("\n").filter((l) => l.startsWith("{"));
  assert.ok(lines.filter((l) => l.includes('"msg":"rpc"')).length > 100, "the host logged every call");
  assert.ok(secrets.size >= 12, `${secrets.size} secrets`);
  const text = `${stdout}\n${stderr}`.toLowerCase();
  for (const [name, hex] of secrets) {
    assert.ok(!text.includes(hex), `${name} (hex) appears in the logs`);
    const b64 = Buffer.from(hex, "hex").toString("base64");
    assert.ok(!`${stdout}\n${stderr}`.includes(b64), `${name} (base64) appears in the logs`);
  }
});
