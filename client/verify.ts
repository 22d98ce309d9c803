// `verify <coin>`: everything an owner can check about a coin without trusting the SE, as a list of named
// checks (pass / fail / skip with the reason). The statechain from the deposit key, the SMT proofs (current and
// published), the Mainstay slot proof and its attestation transaction on chain, the funding and kick-off
// transactions, every backup in the history, and the attestation of every key update against the PCR policy,
// with the deletion receipts' chain.
import { decodeDocument } from "../attestation/document.ts";
import { decodeReceipt, verifyReceiptChain } from "../attestation/receipt.ts";
import { verifyAttestation } from "../attestation/verify.ts";
import { BackupMode, type KeyUpdateRecord, type Outpoint, StatechainStatus } from "../proto/gen/common.ts";
import type { GetSmtProofResponse, GetStatechainResponse } from "../proto/gen/statechain.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { toDisplayHex, verifyMainstayProof } from "../protocol/mainstay.ts";
import { outpointString } from "../protocol/outpoint.ts";
import { verifySmtProof } from "../protocol/smt/index.ts";
import { statechainIdBytes, statechainKey, type VerifiedChain, verifyChain } from "../protocol/statechain.ts";
import { parseTx, txidOf, txidToHex } from "../protocol/tx/parse.ts";
import { p2wpkhScript } from "../protocol/tx/script.ts";
import { lockFor, type OwnerContext } from "./owner.ts";
import { certificateCache, checkBackup, checkKickoff } from "./receive.ts";

export type CheckStatus = "pass" | "fail" | "skip";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface VerifyReport {
  statechainId: string;
  /** No check failed. */
  ok: boolean;
  /** An attestation chained to the simulator root: no hardware guarantee at all. */
  simulator: boolean;
  checks: CheckResult[];
  /** The attestation documents the checks judged, one per key update, with what they were checked against. */
  documents: AttestationRecord[];
}

/** A key update's attestation document as the SE keeps it: to export, and check again with verify-attestation. */
export interface AttestationRecord {
  ownerIndex: number;
  /** CBOR COSE_Sign1 bytes. */
  document: Uint8Array;
  nonce: Uint8Array;
  /** The deletion receipt: the document's user_data is its SHA-256. */
  receipt: Uint8Array;
  /** When the document was made (ms since the epoch; undefined if it does not decode). */
  madeAt?: number;
}

export interface VerifiableCoin {
  statechainId: Outpoint;
  sharedPublicKey: Uint8Array;
  amountSat: bigint;
  backupMode: "absolute" | "kickoff";
  initialLock: number;
  interval: number;
  /** This wallet's owner index and keys for the coin. */
  ownerIndex: number;
  proofKey: Uint8Array;
  backupKey: Uint8Array;
  /** Whether the wallet believes it holds the coin now (not sent, withdrawn or exited). */
  held: boolean;
  fundingTx: Uint8Array;
  /** Earlier owners' backups, oldest first, then this wallet's. */
  backups: readonly Uint8Array[];
  kickoffTx?: Uint8Array;
}

type Ctx = Pick<
  OwnerContext,
  "se" | "chain" | "trust" | "now" | "mainstayKey" | "mainstaySlot" | "allowUnpublished"
>;

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

class Checks {
  readonly list: CheckResult[] = [];
  add(name: string, status: CheckStatus, detail: string) {
    this.list.push({ name, status, detail });
  }
  /** Runs `fn`; a ProtocolError (or a false result) fails the check with its message. */
  async run(name: string, fn: () => string | Promise<string>): Promise<boolean> {
    try {
      this.add(name, "pass", await fn());
      return true;
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.add(name, "fail", `${e.message} [${e.code}]`);
      return false;
    }
  }
}

function need(cond: unknown, code: string, message: string): asserts cond {
  if (!cond) throw new ProtocolError(code, message, "precondition");
}

export async function verifyCoin(ctx: Ctx, coin: VerifiableCoin): Promise<VerifyReport> {
  const c = new Checks();
  const sid = coin.statechainId;
  const sc = await ctx.se.call("getStatechain", { statechainId: sid });
  let chain: VerifiedChain | undefined;
  await c.run("statechain.signatures", () => {
    chain = verifyChain(sc.depositProofKey, sc.chain);
    return `${sc.chain.length} statechain transaction(s) from the deposit proof key, each signed by the owner before`;
  });
  await statechainChecks(c, coin, sc, chain);
  const proof = await ctx.se.call("getSmtProof", { statechainId: sid });
  await publicationChecks(c, ctx, coin, sc, proof, chain);
  await chainChecks(c, ctx, coin);
  backupChecks(c, coin);
  const simulator = attestationChecks(c, ctx, coin, sc.keyUpdates);
  return {
    statechainId: outpointString(sid),
    ok: c.list.every((x) => x.status !== "fail"),
    simulator,
    checks: c.list,
    documents: sc.keyUpdates.map((k) => {
      let madeAt: number | undefined;
      try {
        madeAt = decodeDocument(k.attestationDocument).timestamp;
      } catch {}
      return {
        ownerIndex: k.ownerIndex,
        document: k.attestationDocument,
        nonce: k.attestationNonce,
        receipt: k.receipt,
        madeAt,
      };
    }),
  };
}

async function statechainChecks(
  c: Checks,
  coin: VerifiableCoin,
  sc: GetStatechainResponse,
  chain: VerifiedChain | undefined,
): Promise<void> {
  await c.run("statechain.coin", () => {
    need(same(sc.sharedPublicKey, coin.sharedPublicKey), "SHARED_KEY", "the SE reports another shared key P");
    need(
      sc.amountSat === coin.amountSat,
      "AMOUNT",
      `the SE reports ${sc.amountSat} sat, the wallet ${coin.amountSat}`,
    );
    const mode = sc.backupMode === BackupMode.BACKUP_MODE_KICKOFF ? "kickoff" : "absolute";
    need(
      mode === coin.backupMode,
      "BACKUP_MODE",
      `the SE reports ${mode} backups, the wallet ${coin.backupMode}`,
    );
    need(sc.initialLock === coin.initialLock, "INITIAL_LOCK", `the SE reports h0 = ${sc.initialLock}`);
    return `shared key, amount (${coin.amountSat} sat), ${mode} backups and first lock ${sc.initialLock} agree`;
  });
  if (!chain) {
    c.add("statechain.state_hash", "skip", "the statechain did not verify");
    return;
  }
  const ch = chain;
  await c.run("statechain.state_hash", () => {
    need(
      same(ch.currentState, sc.stateHash),
      "STATE_HASH",
      "the SE's state hash is not its statechain's last state",
    );
    const links = sc.chain.length - (ch.closed ? 1 : 0);
    need(links === sc.ownerIndex - 1, "OWNER_INDEX", `${links} transfers for owner index ${sc.ownerIndex}`);
    return `state ${Buffer.from(sc.stateHash).toString("hex").slice(0, 16)}… after ${links} transfer(s)`;
  });
  const owner = `owner ${sc.ownerIndex}, status ${StatechainStatus[sc.status] ?? sc.status}`;
  if (!coin.held) {
    c.add("statechain.ownership", "skip", `the wallet no longer holds this coin (${owner})`);
    return;
  }
  await c.run("statechain.ownership", () => {
    need(!ch.closed, "STATECHAIN_CLOSED", "the statechain is closed");
    need(
      same(ch.currentKey, coin.proofKey) && sc.ownerIndex === coin.ownerIndex,
      "NOT_OWNER",
      `the statechain's current owner is not this wallet (${owner})`,
    );
    return `this wallet is the current owner (${owner})`;
  });
}

async function publicationChecks(
  c: Checks,
  ctx: Ctx,
  coin: VerifiableCoin,
  sc: GetStatechainResponse,
  proof: GetSmtProofResponse,
  chain: VerifiedChain | undefined,
): Promise<void> {
  const key = statechainKey(coin.statechainId);
  await c.run("smt.current", () => {
    need(same(proof.key, key), "SMT_KEY", "the proof is for another key than SHA-256(statechain id)");
    need(same(proof.currentLeaf, sc.stateHash), "SMT_LEAF", "the SE's tree does not hold the current state");
    verifySmtProof(proof.currentRoot, key, proof.currentLeaf, proof.currentProof!);
    return `the current state is in the tree under root ${toDisplayHex(proof.currentRoot).slice(0, 16)}…`;
  });
  // A publication the SE does not show fails the check, unless the wallet accepts unpublished coins (an SE
  // without Mainstay): then it is skipped and says so.
  const unpublished = (name: string, why: string) =>
    ctx.allowUnpublished
      ? c.add(name, "skip", `unpublished (accepted: --allow-unpublished): ${why}`)
      : c.add(
          name,
          "fail",
          `${why}: the coin's state is not provably published (wait for the SE's next Mainstay commitment; --allow-unpublished accepts this for an SE without Mainstay) [UNPUBLISHED]`,
        );
  if (proof.leaf.length === 0) {
    unpublished("smt.published", "no published root holds this statechain yet");
    c.add("mainstay.slot_proof", "skip", "nothing published yet");
    return;
  }
  await c.run("smt.published", () => {
    verifySmtProof(proof.root, key, proof.leaf, proof.proof!);
    need(
      !chain || chain.states.some((s) => same(s, proof.leaf)),
      "SMT_PUBLISHED_LEAF",
      "the published leaf is not a state of this statechain",
    );
    const at = chain?.states.findIndex((s) => same(s, proof.leaf)) ?? -1;
    return `published root ${toDisplayHex(proof.root).slice(0, 16)}… holds state ${at + 1} of ${chain?.states.length ?? "?"}`;
  });
  const m = proof.mainstay;
  if (!m) {
    unpublished("mainstay.slot_proof", "the published root is not committed to Mainstay yet");
    return;
  }
  await c.run("mainstay.slot_proof", () => {
    verifyMainstayProof(m, proof.root);
    if (ctx.mainstaySlot !== undefined)
      need(
        m.position === ctx.mainstaySlot,
        "MAINSTAY_SLOT",
        `the proof is for slot ${m.position}, but this wallet trusts slot ${ctx.mainstaySlot} for this SE`,
      );
    return `the root is the commitment of slot ${m.position} under slot-tree root ${toDisplayHex(m.merkleRoot).slice(0, 16)}…`;
  });
  const txid = toDisplayHex(m.txid);
  const tx = await ctx.chain.getTx(txid);
  await c.run("mainstay.attestation_tx", () => {
    need(tx, "MAINSTAY_TX_MISSING", `attestation transaction ${txid} is not on the chain`);
    need(tx.status.confirmations > 0, "MAINSTAY_TX_UNCONFIRMED", `attestation ${txid} is not confirmed`);
    const parsed = parseTx(tx.raw, "attestation transaction");
    need(parsed.outs.length === 1, "MAINSTAY_STAYCHAIN", "an attestation transaction has exactly one output");
    return `attestation ${txid.slice(0, 16)}… confirmed ${tx.status.confirmations} time(s)`;
  });
  if (!ctx.mainstayKey || ctx.mainstaySlot === undefined) {
    unpublished(
      "mainstay.commitment",
      "the wallet trusts no Mainstay slot and service key for this SE (recorded when it is trusted, or --mainstay-slot with --mainstay-key), so the transaction's commitment to the slot-tree root cannot be checked",
    );
  } else if (tx) {
    const params = ctx.mainstayKey;
    await c.run("mainstay.commitment", () => {
      verifyMainstayProof(m, proof.root, { attestationTx: tx.raw, params });
      return "the attestation transaction pays the service key tweaked by the slot-tree root";
    });
  }
}

async function chainChecks(c: Checks, ctx: Ctx, coin: VerifiableCoin): Promise<void> {
  const sid = coin.statechainId;
  await c.run("funding.transaction", () => {
    const tx = parseTx(coin.fundingTx, "funding transaction");
    need(same(txidOf(tx), sid.txid), "FUNDING_TX", "the funding transaction is not the statechain's");
    const out = tx.outs[sid.vout];
    need(
      out && same(out.script, p2wpkhScript(coin.sharedPublicKey)) && out.value === coin.amountSat,
      "FUNDING_OUTPUT",
      "the funding output does not pay the shared key the amount",
    );
    return `output ${sid.vout} pays ${coin.amountSat} sat to P2WPKH(P)`;
  });
  const utxo = await ctx.chain.getUtxo(txidToHex(sid.txid), sid.vout);
  const st = utxo ? undefined : await ctx.chain.getTxStatus(txidToHex(sid.txid));
  c.add(
    "funding.on_chain",
    utxo || st ? "pass" : "fail",
    utxo
      ? `unspent, ${utxo.confirmations} confirmation(s)`
      : st
        ? `the funding output is spent (kick-off, backup or withdrawal), funding confirmed ${st.confirmations} time(s)`
        : "the funding transaction is not on the chain",
  );
  if (coin.backupMode === "kickoff") {
    const k = coin.kickoffTx;
    if (!k?.length) c.add("kickoff.transaction", "fail", "the wallet holds no kick-off for a kick-off coin");
    else
      await c.run("kickoff.transaction", () => {
        checkKickoff(k, sid, coin.sharedPublicKey, coin.amountSat);
        return "spends the coin to [P2WPKH(P), anchor], signed under P";
      });
  }
}

function backupChecks(c: Checks, coin: VerifiableCoin): void {
  const ctx = {
    mode: coin.backupMode,
    statechainId: coin.statechainId,
    amountSat: coin.amountSat,
    kickoffTx: coin.kickoffTx,
    sharedPublicKey: coin.sharedPublicKey,
    initialLock: coin.initialLock,
    interval: coin.interval,
  };
  const locks: number[] = [];
  const unit = coin.backupMode === "absolute" ? "height" : "blocks after the kick-off";
  coin.backups.forEach((raw, i) => {
    const owner = i + 1;
    const mine = i === coin.backups.length - 1;
    try {
      locks.push(checkBackup(raw, owner, ctx, mine ? coin.backupKey : undefined));
      c.add(
        `backup.owner_${owner}`,
        "pass",
        `${mine ? "this wallet's backup" : `owner ${owner}'s backup`}: signed under P, lock ${locks[i]} (${unit})`,
      );
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      locks.push(Number.NaN);
      c.add(`backup.owner_${owner}`, "fail", `${e.message} [${e.code}]`);
    }
  });
  const ordered = locks.every(
    (l, i) => l === lockFor(coin.initialLock, coin.interval, i + 1) && (i === 0 || l < locks[i - 1]!),
  );
  c.add(
    "backup.order",
    ordered ? "pass" : "fail",
    ordered
      ? `locks ${locks.join(" > ")} decrease by ${coin.interval} per owner`
      : "the backups' locks do not decrease by the interval, owner by owner",
  );
  const mineLast = coin.backups.length === coin.ownerIndex;
  c.add(
    "backup.mine_last",
    mineLast ? "pass" : "fail",
    mineLast
      ? `this wallet's backup (owner ${coin.ownerIndex}) unlocks first`
      : `the wallet holds ${coin.backups.length} backups for owner ${coin.ownerIndex}`,
  );
}

/** Each key update's attestation and receipt; returns whether any chained to the simulator root. */
function attestationChecks(c: Checks, ctx: Ctx, coin: VerifiableCoin, records: KeyUpdateRecord[]): boolean {
  let simulator = false;
  const opts = {
    certCache: certificateCache,
    roots: { aws: ctx.trust.aws ?? true, simulatorRootPem: ctx.trust.simulatorRootPem },
    pcrPolicy: ctx.trust.pcrPolicy,
    allowDebug: ctx.trust.allowDebug,
  };
  if (records.length === 0)
    c.add("attestation.key_updates", "skip", "the coin has had no key update (no transfer)");
  if (!ctx.trust.pcrPolicy)
    c.add(
      "attestation.pcr_policy",
      "fail",
      "no PCR policy: attestations cannot be tied to a known enclave release",
    );
  const idBytes = statechainIdBytes(coin.statechainId);
  for (const rec of records) {
    const name = `attestation.owner_${rec.ownerIndex}`;
    let at = ctx.now();
    try {
      // A past document is judged at its own time: its leaf certificate lived about three hours.
      at = decodeDocument(rec.attestationDocument).timestamp;
    } catch {
      // structure failures are reported by verifyAttestation below
    }
    const v = verifyAttestation(rec.attestationDocument, {
      ...opts,
      at,
      expectedNonce: rec.attestationNonce,
      receipt: rec.receipt,
    });
    simulator ||= v.simulator;
    const tag = v.simulator ? "SIMULATOR " : "";
    let receiptOk = false;
    try {
      const r = decodeReceipt(rec.receipt);
      receiptOk = r.type === "key-update" && same(r.statechain, idBytes) && r.epoch === rec.ownerIndex;
    } catch {
      receiptOk = false;
    }
    if (v.valid && receiptOk)
      c.add(
        name,
        "pass",
        `${tag}attestation of the key update to owner ${rec.ownerIndex}: chain, signature, PCRs (${v.release ?? "debug"}), nonce and deletion receipt verify`,
      );
    else
      c.add(
        name,
        "fail",
        `${tag}${[
          ...v.failures.map((f) => `${f.check}: ${f.message}`),
          ...v.notChecked.map((n) => `${n}: not checked`),
          ...(receiptOk ? [] : ["the receipt does not describe this coin's key update"]),
        ].join("; ")}`,
      );
  }
  if (records.length > 0) {
    // Receipts chain across the enclave instance's every coin, so another coin's receipts may sit between two of
    // this coin's: a missing direct link (receipt.prev_link) is expected; order, forks and erasure are checked.
    const chain = verifyReceiptChain(records.map((r) => r.receipt));
    const problems = chain.failures.filter((f) => f.check !== "receipt.prev_link");
    const epochs = records.every((r, i) => r.ownerIndex === i + 2);
    c.add(
      "receipts.chain",
      problems.length === 0 && epochs ? "pass" : "fail",
      problems.length === 0 && epochs
        ? `${records.length} receipt(s): epochs 2…${records.length + 1} in order, time never goes back, no fork`
        : [
            ...problems.map((p) => p.message),
            ...(epochs ? [] : ["key updates are not owners 2, 3, … in order"]),
          ].join("; "),
    );
  }
  return simulator;
}
