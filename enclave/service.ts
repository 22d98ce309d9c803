// The enclave's handlers for enclave.proto, one module per protocol step (enclave/steps/*) over the state in
// enclave/core.ts: the homomorphic signer of the two-party ECDSA for every coin, the co-signing policy, the
// transfer (x1, attested transfer key, key update with erasure) and the withdrawal. Owner requests arrive as the
// exact bytes the owner signed; the enclave verifies those signatures itself and trusts the host only for what
// it names (the chain tip, a withdrawal's confirmation).
import type * as E from "../proto/gen/enclave.ts";
import { check, ProtocolError } from "../protocol/errors.ts";
import { EnclaveCore, type Replicator } from "./core.ts";
import { bindFunding, keyGenFinish, keyGenInit } from "./steps/deposit.ts";
import { getAttestation, getCoinKey, getStatus, listStatechains } from "./steps/identity.ts";
import { getKeyUpdate, keyUpdate } from "./steps/key-update.ts";
import { signFirst, signSecond } from "./steps/sign.ts";
import { transferInit, transferKey } from "./steps/transfer.ts";
import { closeStatechain, withdrawInit } from "./steps/withdraw.ts";

export { ANSWER_TTL_MS, type EnclaveDeps } from "./core.ts";

/** What every member answers, leader or not: its own status, and the host's request to found a set. */
const ANY_MEMBER = new Set(["getStatus", "foundReplicaSet"]);

export class Enclave extends EnclaveCore {
  getStatus(): Promise<E.GetStatusResponse> {
    return getStatus(this);
  }

  getAttestation(req: E.GetAttestationRequest): Promise<E.GetAttestationResponse> {
    return getAttestation(this, req);
  }

  listStatechains(req: E.ListStatechainsRequest): Promise<E.ListStatechainsResponse> {
    return listStatechains(this, req);
  }

  keyGenInit(r: E.KeyGenInitRequest): Promise<E.KeyGenInitResponse> {
    return keyGenInit(this, r);
  }

  keyGenFinish(r: E.KeyGenFinishRequest): Promise<E.KeyGenFinishResponse> {
    return keyGenFinish(this, r);
  }

  bindFunding(r: E.BindFundingRequest): Promise<E.BindFundingResponse> {
    return bindFunding(this, r);
  }

  signFirst(r: E.SignFirstRequest): Promise<E.SignFirstResponse> {
    return signFirst(this, r);
  }

  signSecond(r: E.SignSecondRequest): Promise<E.SignSecondResponse> {
    return signSecond(this, r);
  }

  transferInit(r: E.TransferInitRequest): Promise<E.TransferInitResponse> {
    return transferInit(this, r);
  }

  transferKey(r: E.TransferKeyRequest): Promise<E.TransferKeyResponse> {
    return transferKey(this, r);
  }

  keyUpdate(r: E.KeyUpdateRequest): Promise<E.KeyUpdateResponse> {
    return keyUpdate(this, r);
  }

  getKeyUpdate(r: E.GetKeyUpdateRequest): Promise<E.GetKeyUpdateResponse> {
    return getKeyUpdate(this, r);
  }

  getCoinKey(r: E.GetCoinKeyRequest): Promise<E.GetCoinKeyResponse> {
    return getCoinKey(this, r);
  }

  withdrawInit(r: E.WithdrawInitRequest): Promise<E.WithdrawInitResponse> {
    return withdrawInit(this, r);
  }

  closeStatechain(r: E.CloseStatechainRequest): Promise<E.CloseStatechainResponse> {
    return closeStatechain(this, r);
  }

  async foundReplicaSet(_: E.FoundReplicaSetRequest): Promise<E.FoundReplicaSetResponse> {
    const r = this.replicaSet();
    check(
      this.coins.size === 0,
      "REPLICA_NOT_EMPTY",
      "an enclave that holds coins cannot found a set",
      "precondition",
    );
    await r.found();
    return { replica: r.status() };
  }

  async addReplica(req: E.AddReplicaRequest): Promise<E.AddReplicaResponse> {
    const r = this.replicaSet();
    check(/^[0-9a-f]{64}$/.test(req.memberId), "MEMBER_ID", "a member id is 64 hex digits (an instance key)");
    await r.admit(req.memberId);
    return { replica: r.status() };
  }

  private replicaSet(): Replicator {
    const r = this.d.replica;
    check(r, "NOT_REPLICATED", "this enclave was started standalone (without --replica)", "precondition");
    return r;
  }

  handlers(): Record<string, (req: never) => Promise<unknown>> {
    const names = [
      "getStatus",
      "getAttestation",
      "listStatechains",
      "keyGenInit",
      "keyGenFinish",
      "bindFunding",
      "signFirst",
      "signSecond",
      "transferInit",
      "transferKey",
      "keyUpdate",
      "getKeyUpdate",
      "getCoinKey",
      "withdrawInit",
      "closeStatechain",
      "foundReplicaSet",
      "addReplica",
    ] as const;
    return Object.fromEntries(
      names.map((n) => [
        n,
        (req: never) => {
          // A member that does not lead serves no coin step: its state may be behind the set's (DESIGN.md 4.1).
          const replica = this.d.replica;
          if (replica && !replica.leading() && !ANY_MEMBER.has(n)) {
            return Promise.reject(
              new ProtocolError(
                "NOT_LEADER",
                "this enclave does not lead its replica set; ask the leader",
                "unavailable",
              ),
            );
          }
          return (this[n] as (r: never) => Promise<unknown>).call(this, req);
        },
      ]),
    );
  }
}
