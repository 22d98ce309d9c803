// Identity: the enclave's status, its attested identity statement, and the public state of its coins.
import { encodeIdentityStatement, statementHash } from "../../attestation/statements.ts";
import type * as E from "../../proto/gen/enclave.ts";
import { writeNat } from "../../protocol/ecdsa2p/codec.ts";
import { pointBytes } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { coinStatus, type EnclaveCore, hex } from "../core.ts";
import { policyHash, policyJson } from "../policy.ts";

export async function getStatus(e: EnclaveCore): Promise<E.GetStatusResponse> {
  const d = e.d;
  return {
    instanceId: d.instanceId,
    startedAtMs: BigInt(e.startedAt),
    logHead: d.log.head,
    logLength: d.log.length,
    lastReceiptHash: Buffer.from(e.lastReceipt),
    attestationMode: d.provider.mode,
    pcr0: d.pcrs.pcr0.toString("hex"),
    pcr1: d.pcrs.pcr1.toString("hex"),
    pcr2: d.pcrs.pcr2.toString("hex"),
    statechainCount: e.coins.size,
    maxChainTip: e.maxTip,
    policyHash: policyHash(d.policy),
    version: d.version,
    simulatorRootPem: d.simulatorRootPem,
    policyJson: policyJson(d.policy),
    replica: d.replica?.status(),
  };
}

export async function getAttestation(
  e: EnclaveCore,
  req: E.GetAttestationRequest,
): Promise<E.GetAttestationResponse> {
  check(
    req.nonce.length >= 16 && req.nonce.length <= 64,
    "ATTESTATION_NONCE",
    "attestation nonce must be 16 to 64 bytes",
  );
  const instance = await e.d.instance;
  const identity = encodeIdentityStatement({
    instance: e.d.instanceId,
    log: e.d.log.head,
    policy: policyHash(e.d.policy),
    key: instance.publicKey,
    rp: Buffer.from(instance.ringPedersenPublic.id, "hex"),
    time: e.d.now(),
  });
  const document = await e.d.provider.attest({ nonce: req.nonce, userData: statementHash(identity) });
  return {
    document: Buffer.from(document),
    identity: Buffer.from(identity),
    ringPedersen: instance.ringPedersen,
  };
}

export async function listStatechains(
  e: EnclaveCore,
  req: E.ListStatechainsRequest,
): Promise<E.ListStatechainsResponse> {
  const size = Math.min(Math.max(req.pageSize || 100, 1), 1000);
  const after = hex(req.pageAfter);
  const all = e.coins
    .all()
    .map((c) => ({ c, k: c.depositId.toString("hex") }))
    .sort((a, b) => a.k.localeCompare(b.k))
    .filter((x) => x.k > after);
  const page = all.slice(0, size);
  return {
    statechains: page.map(({ c }) => ({
      depositId: c.depositId,
      statechainId: c.outpoint,
      sharedPublicKey: c.sharedPublicKey ?? Buffer.alloc(0),
      ownerIndex: c.ownerIndex,
      proofKey: c.proofKey,
      stateHash: c.stateHash,
      status: coinStatus(c),
      initialLock: c.initialLock ?? 0,
      amountSat: c.amountSat ?? 0n,
      // Public: what the owner signed; a host that crashed before writing the withdrawal writes it from here.
      withdrawScript: c.withdraw?.withdrawScript ?? Buffer.alloc(0),
      withdrawSignature: c.withdraw?.statechainTx ?? Buffer.alloc(0),
    })),
    nextPageAfter: all.length > size ? page[page.length - 1]!.c.depositId : Buffer.alloc(0),
  };
}

/**
 * The public parts of a funded coin's key (issue #22): S, and the owner's N and c_key exactly as the enclave holds
 * them, so an owner rebuilding its wallet from the mnemonic checks its derived share and Paillier key against
 * them (o·S = P, Dec_N(c_key) = o). Nothing secret: s stays here.
 */
export async function getCoinKey(e: EnclaveCore, r: E.GetCoinKeyRequest): Promise<E.GetCoinKeyResponse> {
  const coin = e.fundedCoin(r.statechainId);
  const key = coin.key;
  check(key && !key.wiped, "NO_KEY", "the enclave holds no key for this coin", "not_found");
  return {
    ownerIndex: coin.ownerIndex,
    proofKey: coin.proofKey,
    sePublicShare: Buffer.from(pointBytes(key.sePublicShare)),
    paillierModulus: writeNat(key.paillierModulus),
    encryptedShare: writeNat(key.encryptedShare),
  };
}
