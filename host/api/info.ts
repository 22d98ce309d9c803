// Read-only information: configuration and fees, statechains with their key-update evidence, SMT + Mainstay
// proofs, fresh attestation documents, and deposit challenges.
import { BackupMode, KeyUpdateRecord, SignPurpose, StatechainTx } from "../../proto/gen/common.ts";
import type {
  EnclaveInfo,
  GetAttestationRequest,
  GetAttestationResponse,
  GetInfoResponse,
  GetSmtProofRequest,
  GetSmtProofResponse,
  GetStatechainRequest,
  GetStatechainResponse,
} from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { check } from "../../protocol/errors.ts";
import type { CallContext } from "../rpc.ts";
import type { ApiDeps } from "./deps.ts";
import { requireStatechain } from "./lookup.ts";

export const VERSION = "0.1.0";

export async function enclaveInfo(deps: ApiDeps): Promise<EnclaveInfo> {
  // What GetStatus says is fixed for an enclave instance, so the monitor's last answer serves: a live call would
  // queue behind the enclave's key updates, seconds under load, and GetInfo would fail for no reason.
  const st =
    deps.monitor.enclaveStatus() ??
    (await unary(deps.enclave, deps.enclave.getStatus, {}, { deadlineMs: 5000 }));
  return {
    instanceId: st.instanceId,
    attestationMode: st.attestationMode,
    expectedPcrs: [
      { name: `${st.attestationMode}-${st.version}`, pcr0: st.pcr0, pcr1: st.pcr1, pcr2: st.pcr2, pcr8: "" },
    ],
    simulatorRootPem: st.attestationMode === "simulator" ? deps.simulatorRootPem : "",
    replicaSet: st.replica?.setId
      ? {
          setId: st.replica.setId,
          leaderId: st.replica.leaderId,
          term: st.replica.term,
          commitIndex: st.replica.commitIndex,
          members: st.replica.members.map((m) => ({
            id: m.id,
            lag: st.replica!.commitIndex > m.appliedIndex ? st.replica!.commitIndex - m.appliedIndex : 0n,
            lastHeardMsAgo: m.id === st.replica!.memberId ? 0n : m.lastHeardMsAgo,
          })),
        }
      : undefined,
  };
}

export function infoHandlers(deps: ApiDeps) {
  const { cfg, store } = deps;
  return {
    async getInfo(): Promise<GetInfoResponse> {
      const p = cfg.protocol;
      return {
        network: cfg.network,
        version: VERSION,
        backupMode:
          p.backupMode === "kickoff" ? BackupMode.BACKUP_MODE_KICKOFF : BackupMode.BACKUP_MODE_ABSOLUTE,
        initLock: p.initLock,
        locktimeInterval: p.locktimeInterval,
        lockSafetyMargin: p.lockSafetyMargin,
        depositConfirmations: p.depositConfirmations,
        withdrawConfirmations: p.withdrawConfirmations,
        minDepositSat: BigInt(p.minDepositSat),
        maxDepositSat: BigInt(p.maxDepositSat),
        withdrawFeeBps: p.withdrawFeeBps,
        feeAddress: p.feeAddress,
        minFeeRateSatVb: p.minFeeRateSatVb,
        chainTip: deps.monitor.snapshot().chain.height,
        depositGuard: cfg.deposit.guard,
        mainstay: {
          enabled: cfg.mainstay.enabled,
          url: deps.mainstayUrl,
          slot: cfg.mainstay.slot,
          commitIntervalS: cfg.mainstay.commitIntervalS,
          servicePublicKey: Buffer.from(deps.mainstayKey?.basePubkey ?? []),
          serviceChainCode: Buffer.from(deps.mainstayKey?.chainCode ?? []),
        },
        enclave: await enclaveInfo(deps),
      };
    },

    async getStatechain(req: GetStatechainRequest): Promise<GetStatechainResponse> {
      const { row, id, idBytes } = await requireStatechain(deps, req.statechainId);
      const [txs, updates, backups] = await Promise.all([
        store.chainTxs(idBytes),
        store.keyUpdates(idBytes),
        store.backups(idBytes),
      ]);
      const fundingTxid = Buffer.from(id.txid).reverse().toString("hex");
      const st = await deps.chain.getTxStatus(fundingTxid).catch(() => undefined);
      return {
        statechainId: id,
        status: row.status,
        amountSat: BigInt(row.amount_sat),
        sharedPublicKey: row.shared_public_key,
        ownerIndex: row.owner_index,
        depositProofKey: row.deposit_proof_key,
        currentProofKey: row.proof_key,
        chain: txs.map((t) => StatechainTx.decode(t.tx)),
        stateHash: row.state_hash,
        backupMode: row.backup_mode,
        initialLock: row.initial_lock,
        keyUpdates: updates.map((u) => KeyUpdateRecord.decode(u.record)),
        fundingConfirmations: st?.confirmations ?? 0,
        fundingState: row.funding_state,
        fundingProblem: row.funding_problem ?? "",
        nextOwnerBackupSigned: backups.some(
          (b) => b.owner_index === row.owner_index + 1 && b.purpose === SignPurpose.SIGN_PURPOSE_BACKUP,
        ),
      };
    },

    async getSmtProof(req: GetSmtProofRequest): Promise<GetSmtProofResponse> {
      const { idBytes } = await requireStatechain(deps, req.statechainId);
      // Steps update the tree after they answer; a reader gets every committed state.
      await deps.tree.sync();
      return deps.proofs.proofFor(idBytes);
    },

    async getAttestation(req: GetAttestationRequest, _ctx: CallContext): Promise<GetAttestationResponse> {
      check(
        req.nonce.length >= 16 && req.nonce.length <= 64,
        "ATTESTATION_NONCE",
        "attestation nonce must be 16 to 64 bytes",
      );
      const res = await unary(
        deps.enclave,
        deps.enclave.getAttestation,
        { nonce: req.nonce },
        { deadlineMs: 10_000 },
      );
      // The policy JSON is the enclave's own (GetStatus); a wallet checks its hash against the attested identity.
      const st =
        deps.monitor.enclaveStatus() ??
        (await unary(deps.enclave, deps.enclave.getStatus, {}, { deadlineMs: 5000 }));
      return {
        document: res.document,
        enclave: await enclaveInfo(deps),
        identity: res.identity,
        policyJson: st.policyJson,
        ringPedersen: res.ringPedersen,
      };
    },
  };
}
