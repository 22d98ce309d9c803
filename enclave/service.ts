// The enclave's handlers for enclave.proto, one module per protocol step (enclave/steps/*) over the state in
// enclave/core.ts: the homomorphic signer of the two-party ECDSA for every coin, the co-signing policy, the
// transfer (x1, attested transfer key, key update with erasure) and the withdrawal. Owner requests arrive as the
// exact bytes the owner signed; the enclave verifies those signatures itself and trusts the host only for what
// it names (the chain tip, a withdrawal's confirmation).
import type * as E from "../proto/gen/enclave.ts";
import { EnclaveCore } from "./core.ts";
import { bindFunding, keyGenFinish, keyGenInit } from "./steps/deposit.ts";
import { getAttestation, getCoinKey, getStatus, listStatechains } from "./steps/identity.ts";
import { getKeyUpdate, keyUpdate } from "./steps/key-update.ts";
import { signFirst, signSecond } from "./steps/sign.ts";
import { transferInit, transferKey } from "./steps/transfer.ts";
import { closeStatechain, withdrawInit } from "./steps/withdraw.ts";

export { ANSWER_TTL_MS, type EnclaveDeps } from "./core.ts";

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
    ] as const;
    return Object.fromEntries(
      names.map((n) => [n, (req: never) => (this[n] as (r: never) => Promise<unknown>).call(this, req)]),
    );
  }
}
