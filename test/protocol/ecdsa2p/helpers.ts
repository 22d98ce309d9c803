// Shared fixtures for the ecdsa2p tests: ring-Pedersen parameters from checked-in safe primes, the enclave's
// instance key, a deposit keygen and a signing run driven through the owner as Paillier holder and the enclave as
// homomorphic signer (DESIGN.md section 3.1), and error matchers.
import { sign as edSign, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { HolderKeyGenShare, SignSePartial } from "../../../proto/gen/ecdsa2p.ts";
import { writeNat } from "../../../protocol/ecdsa2p/codec.ts";
import {
  type HolderKey,
  type HolderSignature,
  type HolderSignOutcome,
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
} from "../../../protocol/ecdsa2p/holder.ts";
import {
  type EncryptionNonce,
  generatePaillierKey,
  type PaillierKey,
} from "../../../protocol/ecdsa2p/paillier.ts";
import {
  instancePublicKey,
  type PartialStatement,
  partialStatementBytes,
} from "../../../protocol/ecdsa2p/partial-statement.ts";
import {
  type RingPedersenKey,
  type RingPedersenPublic,
  readRingPedersen,
  ringPedersenFromPrimes,
  type VerifiedRingPedersen,
  verifyRingPedersen,
} from "../../../protocol/ecdsa2p/ring-pedersen.ts";
import {
  type SignerKey,
  type SignerSignSession,
  signerKeyGenFinish,
  signerKeyGenShare,
  signerSignPartial,
  signerSignStart,
} from "../../../protocol/ecdsa2p/signer.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import { systemRng } from "../../../protocol/rng.ts";

export const rng = systemRng;
export const sid = (): Uint8Array => rng(16);

const primes = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "fixtures/ring-pedersen-primes.json"), "utf8"),
);
export const safePrimes = { p: BigInt(`0x${primes.p}`), q: BigInt(`0x${primes.q}`) };

let rp: RingPedersenKey | undefined;
/** Ring-Pedersen parameters from the checked-in safe primes, with their trapdoor (built once per test file). */
export function ringPedersen(): RingPedersenKey {
  rp ??= ringPedersenFromPrimes(safePrimes.p, safePrimes.q, rng);
  return rp;
}

/** A ProtocolError matcher for assert.throws / assert.rejects. */
export const code = (c: string) => (e: unknown) => {
  if (e instanceof ProtocolError && e.code === c) return true;
  throw e;
};

let enclaveRp: { holder: VerifiedRingPedersen; signer: RingPedersenPublic } | undefined;
/**
 * The enclave's ring-Pedersen parameters (ringPedersen(), from the fixture primes): as the owner holds them once it
 * has verified Π^prm, and the public part the enclave keeps after wiping their trapdoor.
 */
export function enclaveRingPedersen(): { holder: VerifiedRingPedersen; signer: RingPedersenPublic } {
  enclaveRp ??= {
    holder: verifyRingPedersen(ringPedersen().params),
    signer: readRingPedersen(ringPedersen().params),
  };
  return enclaveRp;
}

/** The enclave's attested Ed25519 instance key: its private half signs c3 statements, the wallet checks them. */
export const instance = generateKeyPairSync("ed25519");
export const instanceKey: KeyObject = instancePublicKey(
  Buffer.from(instance.publicKey.export({ format: "jwk" }).x!, "base64url"),
);

/** Signs a c3 statement as the enclave does before c3 leaves it. */
export const signStatement = (statement: PartialStatement): Buffer =>
  edSign(null, partialStatementBytes(statement), instance.privateKey);

export interface Coin {
  holder: HolderKey;
  signer: SignerKey;
  sessionId: Uint8Array;
}

/** A deposit keygen through the holder and the signer, optionally with a given Paillier key and a tampering hook. */
export async function depositCoin(
  opts: { paillier?: PaillierKey; tamper?: (m: HolderKeyGenShare, holder: HolderKey) => void } = {},
): Promise<Coin> {
  const rp = enclaveRingPedersen();
  const sessionId = sid();
  const paillier = opts.paillier ?? (await generatePaillierKey({ rng }));
  const h1 = holderKeyGenCommit({ sessionId, paillier, ringPedersen: rp.holder, rng });
  const s1 = signerKeyGenShare({ sessionId, commit: h1.msg, rng });
  const h2 = holderKeyGenFinish(h1.state, s1.msg, { rng });
  opts.tamper?.(h2.msg, h2.key);
  const signer = signerKeyGenFinish(s1.state, h2.msg, { ringPedersen: rp.signer });
  return { holder: h2.key, signer, sessionId };
}

/** The enclave's side of signing round 2: c3 with its statement signed under the instance key. */
export function signerPartial(
  signer: SignerKey,
  session: SignerSignSession,
  nonce: Parameters<typeof signerSignPartial>[2],
  opts: { encryptionNonce?: EncryptionNonce } = {},
): SignSePartial {
  const { c3, statement } = signerSignPartial(signer, session, nonce, { rng, ...opts });
  return { partialSignature: writeNat(c3), statementSignature: signStatement(statement) };
}

/** Both roles sign `digest`; `relay` stands for the host carrying c3. Returns the owner's outcome. */
export function signCoin(
  holder: HolderKey,
  signer: SignerKey,
  digest: Uint8Array,
  relay: (p: SignSePartial) => SignSePartial = (p) => p,
): HolderSignOutcome {
  const sessionId = sid();
  const c = holderSignCommit(holder, { sessionId, digest, rng });
  const s = signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng });
  const opening = holderSignNonce(holder, c.state, s.msg, { rng });
  return holderSignFinish(holder, c.state, relay(signerPartial(signer, s.session, opening)), { instanceKey });
}

/** signCoin's signature, or an exception saying why there is none. */
export function signature(
  coin: { holder: HolderKey; signer: SignerKey },
  digest: Uint8Array,
): HolderSignature {
  const out = signCoin(coin.holder, coin.signer, digest);
  if (!out.ok) throw new Error(`no signature: ${out.reason}`);
  return out.signature;
}
