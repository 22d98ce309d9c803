// Deposit (DESIGN.md 3.2): key generation with the depositor, then binding the funding output.
import type * as E from "../../proto/gen/enclave.ts";
import { DepositFundRequest, DepositInitRequest, DepositKeyGenRequest } from "../../proto/gen/statechain.ts";
import {
  type SignerKey,
  signerKeyGenFinish,
  signerKeyGenShare,
  wipeSignerKey,
} from "../../protocol/ecdsa2p/signer.ts";
import { parsePoint, pointBytes } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { initialState } from "../../protocol/statechain.ts";
import { parseTx, txidOf } from "../../protocol/tx/parse.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { type Coin, keep } from "../coins.ts";
import { type EnclaveCore, hex, idHexOf, readSigned } from "../core.ts";

export async function keyGenInit(e: EnclaveCore, r: E.KeyGenInitRequest): Promise<E.KeyGenInitResponse> {
  const { req, verify, hash } = readSigned(DepositInitRequest, "DepositInit", r.signedRequest, e.d.now());
  const seen = e.recentInits.get(hash);
  if (seen) return seen.res;
  parsePoint(req.proofKey, "proof key");
  verify(req.proofKey);
  e.sweepDeposits();
  // The enclave's memory is fixed: unfunded deposits are capped here, whatever the host lets through (#19.2).
  const unfunded = e.coins.all().filter((c) => c.stage === "keygen" || c.stage === "keyed");
  check(
    unfunded.length < e.d.policy.maxUnfundedDeposits,
    "DEPOSITS_BUSY",
    "the enclave holds the most deposits that may wait for their funding; try again in a few minutes",
    "exhausted",
  );
  check(
    unfunded.filter((c) => c.depositProofKey.equals(Buffer.from(req.proofKey))).length < 2,
    "DEPOSITS_PER_KEY",
    "this proof key has two deposits waiting for their funding already",
    "exhausted",
  );
  check(req.holderCommit, "MISSING_OWNER_COMMIT", "the owner's keygen commitment is missing");
  const depositId = keep(e.d.rng(16));
  // The owner committed to O1 first (DESIGN.md 3.1); s1 is drawn now, S1's proof bound to that commitment.
  const { state, msg } = signerKeyGenShare({
    sessionId: req.keygenSessionId,
    commit: req.holderCommit,
    rng: e.d.rng,
  });
  const proofKey = keep(req.proofKey);
  const coin: Coin = {
    depositId,
    depositProofKey: proofKey,
    stage: "keygen",
    createdAt: e.d.now(),
    keygen: state,
    ownerIndex: 1,
    proofKey,
    stateHash: keep(initialState(req.proofKey)),
    signSessions: new Map(),
    stateVersion: 0,
    answers: new Map(),
  };
  e.coins.add(coin);
  e.d.log.append({ type: "deposit-init", subject: hex(depositId), at: e.d.now() });
  const res = { depositId, seShare: msg };
  e.recentInits.set(hash, { res, at: e.d.now() });
  if (e.recentInits.size > 1000) e.recentInits.delete(e.recentInits.keys().next().value!);
  return res;
}

export async function keyGenFinish(
  e: EnclaveCore,
  r: E.KeyGenFinishRequest,
): Promise<E.KeyGenFinishResponse> {
  const { req, verify, hash } = readSigned(DepositKeyGenRequest, "DepositKeyGen", r.signedRequest, e.d.now());
  const coin = e.depositCoin(req.depositId);
  return e.step(coin, "keyGenFinish", hash, async () => {
    verify(coin.depositProofKey);
    check(
      coin.stage === "keygen" && coin.keygen,
      "KEYGEN_DONE",
      "key generation for this deposit is already complete",
      "precondition",
    );
    check(req.ownerShare, "MISSING_OWNER_SHARE", "owner share is missing");
    // Whatever the outcome the keygen state is spent: a refused owner starts a new deposit.
    const { ringPedersenPublic } = await e.d.instance;
    const state = coin.keygen;
    coin.keygen = undefined;
    let key: SignerKey | undefined;
    try {
      key = signerKeyGenFinish(state, req.ownerShare, { ringPedersen: ringPedersenPublic });
      e.refuseReusedModulus(key.paillierModulus);
    } catch (err) {
      if (key) wipeSignerKey(key);
      e.coins.remove(coin);
      throw err;
    }
    coin.key = key;
    coin.sharedPublicKey = keep(pointBytes(key.sharedPublicKey));
    coin.stage = "keyed";
    e.d.log.append({ type: "keygen", subject: hex(coin.depositId), at: e.d.now() });
    e.scrubOwed(); // BigInt copies of the new share s
    return { sharedPublicKey: coin.sharedPublicKey };
  });
}

export async function bindFunding(e: EnclaveCore, r: E.BindFundingRequest): Promise<E.BindFundingResponse> {
  const { req, verify, hash } = readSigned(DepositFundRequest, "DepositFund", r.signedRequest, e.d.now());
  const coin = e.depositCoin(req.depositId);
  return e.step(coin, "bindFunding", hash, async () => {
    verify(coin.depositProofKey);
    check(
      coin.stage === "keyed",
      "WRONG_STAGE",
      coin.stage === "keygen"
        ? "finish key generation before binding the funding transaction"
        : "this deposit is already bound to a funding output",
      "precondition",
    );
    const backupKey = parsePoint(req.backupKey, "backup key B1");
    const tx = parseTx(req.fundingTx, "funding transaction");
    const out = tx.outs[req.vout];
    check(out, "FUNDING_VOUT", `funding transaction has no output ${req.vout}`);
    check(
      Buffer.from(out.script).equals(Buffer.from(p2wpkhScript(coin.sharedPublicKey!))),
      "FUNDING_SCRIPT",
      `funding output ${req.vout} does not pay P2WPKH of the shared key`,
    );
    const p = e.d.policy;
    check(
      out.value >= BigInt(p.minDepositSat) && out.value <= BigInt(p.maxDepositSat),
      "DEPOSIT_AMOUNT",
      `deposit amount ${out.value} sat is outside [${p.minDepositSat}, ${p.maxDepositSat}]`,
    );
    const tip = e.acceptTip(r.chainTip);
    const outpoint = { txid: keep(txidOf(tx)), vout: req.vout };
    const idHex = idHexOf(outpoint);
    check(
      !e.coins.statechain(idHex),
      "DUPLICATE_STATECHAIN",
      "another deposit is already bound to this outpoint",
      "precondition",
    );
    coin.outpoint = outpoint;
    coin.amountSat = out.value;
    coin.initialLock = p.backupMode === "absolute" ? tip + p.initLock : p.initLock;
    coin.backupKey = keep(pointBytes(backupKey));
    coin.stage = "funded";
    e.coins.bind(coin, idHex);
    coin.answers.clear();
    e.d.log.append({
      type: "bind-funding",
      subject: idHex,
      detail: { initialLock: coin.initialLock },
      at: e.d.now(),
    });
    return {
      statechainId: outpoint,
      amountSat: out.value,
      initialLock: coin.initialLock,
      backupMode: p.backupMode === "kickoff" ? 2 : 1,
    };
  });
}
