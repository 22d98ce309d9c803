// Two-party ECDSA: modular exponentiation before/after (BigInt vs OpenSSL), Paillier against paillier-bigint, and
// signing through the owner as Paillier holder and the enclave as homomorphic signer beside a plain single-party
// ECDSA signature (the floor), also with the enclave's encryption nonce r^N made ahead. Medians of >= 20 runs.
//
// Keygen is not measured here: `npm run bench -- ecdsa2p-roles` times each role's part of a deposit keygen
// (ecdsa2p.roles.keygen, the owner's Paillier key made ahead as a wallet does), of a key update
// (ecdsa2p.roles.key-update), the owner's Paillier key on its own (ecdsa2p.roles.owner.paillier-key) and its
// check of the enclave's Π^prm (ecdsa2p.roles.owner.verify-prm), and each role's part of a signature
// (ecdsa2p.roles.sign); ecdsa2p.sign here is the same signature as a whole, with the floor as its peer.
import {
  sign as edSign,
  generateKeyPairSync,
  generatePrimeSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { PrivateKey, PublicKey } from "paillier-bigint";
import { modInverse } from "../protocol/ecdsa2p/arith.ts";
import { writeNat } from "../protocol/ecdsa2p/codec.ts";
import {
  type HolderKey,
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
} from "../protocol/ecdsa2p/holder.ts";
import {
  FixedBase,
  modPowBigInt,
  modPowOpenSslConstTime,
  modPowOpenSslPublic,
} from "../protocol/ecdsa2p/modexp.ts";
import {
  decrypt,
  type EncryptionNonce,
  encrypt,
  encryptionNonce,
  generatePaillierKey,
  nonceEngine,
  type PaillierKey,
  paillierFactors,
} from "../protocol/ecdsa2p/paillier.ts";
import { instancePublicKey, partialStatementBytes } from "../protocol/ecdsa2p/partial-statement.ts";
import { KEY_ID_BYTES, proveModulus, verifyModulus } from "../protocol/ecdsa2p/proofs/mod.ts";
import {
  generateRingPedersen,
  readRingPedersen,
  verifyRingPedersen,
} from "../protocol/ecdsa2p/ring-pedersen.ts";
import {
  type SignerKey,
  signerKeyGenFinish,
  signerKeyGenShare,
  signerSignPartial,
  signerSignStart,
} from "../protocol/ecdsa2p/signer.ts";
import { systemRng as rng } from "../protocol/rng.ts";
import { bench, report, time } from "./harness.ts";

const RUNS = 20;
const rnd = (bits: number): bigint => BigInt(`0x${randomBytes(Math.ceil(bits / 8)).toString("hex")}`);
const sid = () => rng(16);

async function modexp(): Promise<void> {
  for (const bits of [1024, 2048, 4096]) {
    const p = generatePrimeSync(bits / 2, { bigint: true });
    const q = generatePrimeSync(bits / 2, { bigint: true });
    const m = p * q;
    const base = rnd(bits) % m;
    const exp = rnd(bits) % m;
    const before = await time(() => modPowBigInt(base, exp, m), { runs: RUNS, warmup: 1 });
    const extra = {
      modulus_bits: bits,
      exponent_bits: bits,
      peer: "bigint-sliding-window",
      peer_median: before.median,
    };
    const ratio = (ms: number) => Math.round((ms / before.median) * 1000) / 1000;
    const ct = await time(() => modPowOpenSslConstTime(base, exp, m), { runs: RUNS });
    report({
      bench: `ecdsa2p.modexp.${bits}.openssl-consttime`,
      unit: "ms",
      ...ct,
      samples: undefined,
      ...extra,
      ratio: ratio(ct.median),
    });
    if (bits <= 3072) {
      const pub = await time(() => modPowOpenSslPublic(base, exp, m), { runs: RUNS });
      report({
        bench: `ecdsa2p.modexp.${bits}.openssl-public`,
        unit: "ms",
        ...pub,
        samples: undefined,
        ...extra,
        ratio: ratio(pub.median),
      });
    }
    const fixed = new FixedBase(base, m);
    const fb = await time(() => fixed.pow(exp), { runs: RUNS });
    report({
      bench: `ecdsa2p.modexp.${bits}.openssl-fixed-base`,
      unit: "ms",
      ...fb,
      samples: undefined,
      ...extra,
      ratio: ratio(fb.median),
    });
    // Per-call overhead: the same paths with a 16-bit exponent.
    const small = 0xbeefn;
    const o1 = await time(() => modPowOpenSslConstTime(base, small, m), { runs: RUNS });
    report({
      bench: `ecdsa2p.modexp.${bits}.overhead.openssl-consttime`,
      unit: "ms",
      ...o1,
      samples: undefined,
      exponent_bits: 16,
    });
    if (bits <= 3072) {
      const o2 = await time(() => modPowOpenSslPublic(base, small, m), { runs: RUNS });
      report({
        bench: `ecdsa2p.modexp.${bits}.overhead.openssl-public`,
        unit: "ms",
        ...o2,
        samples: undefined,
        exponent_bits: 16,
      });
    }
    const create = await time(() => new FixedBase(base, m), { runs: RUNS });
    report({
      bench: `ecdsa2p.modexp.${bits}.overhead.fixed-base-create`,
      unit: "ms",
      ...create,
      samples: undefined,
    });
  }
}

async function paillier(key: PaillierKey): Promise<void> {
  const { p, q } = paillierFactors(key.secret);
  const n = key.n;
  const phi = (p - 1n) * (q - 1n);
  const theirPub = new PublicKey(n, n + 1n);
  const theirPriv = new PrivateKey(phi, modInverse(phi, n), theirPub, p, q);
  const m = rnd(1024);
  await bench("ecdsa2p.paillier.encrypt", () => encrypt(n, m, encryptionNonce(n, rng)), {
    runs: RUNS,
    peer: { name: "paillier-bigint", fn: () => theirPub.encrypt(m) },
  });
  // Repeated encryptions under one key share an OpenSSL object for r ↦ r^N mod N² (nonceEngine).
  const engine = nonceEngine(n);
  await bench("ecdsa2p.paillier.encrypt.engine", () => encrypt(n, m, encryptionNonce(n, rng, engine)), {
    runs: RUNS,
    peer: { name: "paillier-bigint", fn: () => theirPub.encrypt(m) },
  });
  const c = encrypt(n, m, encryptionNonce(n, rng));
  await bench("ecdsa2p.paillier.decrypt", () => decrypt(key, c), {
    runs: RUNS,
    peer: { name: "paillier-bigint", fn: () => theirPriv.decrypt(c) },
  });
  // Π^mod: the largest share of a pooled Paillier key's generation (the primes come from OpenSSL's threads).
  const keyId = rng(KEY_ID_BYTES);
  const modProof = proveModulus(keyId, n, p, q, rng);
  await bench("ecdsa2p.proof.mod.prove", () => proveModulus(keyId, n, p, q, rng), { runs: RUNS });
  await bench("ecdsa2p.proof.mod.verify", () => verifyModulus(n, modProof), { runs: RUNS });
}

/** The enclave's c3, with its statement signed under the instance key, and the owner's finished signature. */
function signOnce(coin: Coin, digest: Uint8Array, nonce?: EncryptionNonce) {
  const { holder, signer } = coin;
  const sessionId = sid();
  const c = holderSignCommit(holder, { sessionId, digest, rng });
  const s = signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng });
  const opening = holderSignNonce(holder, c.state, s.msg, { rng });
  const { c3, statement } = signerSignPartial(signer, s.session, opening, { rng, encryptionNonce: nonce });
  const statementSignature = edSign(null, partialStatementBytes(statement), coin.instance.privateKey);
  const out = holderSignFinish(
    holder,
    c.state,
    { partialSignature: writeNat(c3), statementSignature },
    { instanceKey: coin.instanceKey },
  );
  if (!out.ok) throw new Error(out.reason);
  return out.signature;
}

async function signing(coin: Coin): Promise<void> {
  const sk = secp256k1.utils.randomSecretKey();
  const digest = rng(32);
  const floor = { name: "noble-secp256k1-sign", fn: () => secp256k1.sign(digest, sk, { prehash: false }) };
  await bench("ecdsa2p.sign", () => signOnce(coin, rng(32)), { runs: RUNS, peer: floor });
  const n = coin.signer.paillierModulus;
  const engine = nonceEngine(n);
  const nonces = Array.from({ length: RUNS + 2 }, () => encryptionNonce(n, rng, engine));
  await bench("ecdsa2p.sign.precomputed-nonce", () => signOnce(coin, rng(32), nonces.pop()), {
    runs: RUNS,
    peer: floor,
  });
}

interface Coin {
  holder: HolderKey;
  signer: SignerKey;
  instance: { privateKey: KeyObject };
  instanceKey: KeyObject;
}

/** One deposit keygen (untimed): the coin the signing benches use. */
async function deposit(): Promise<Coin> {
  const rp = await generateRingPedersen(rng);
  const sessionId = sid();
  const h1 = holderKeyGenCommit({
    sessionId,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: verifyRingPedersen(rp.params),
    rng,
  });
  const s1 = signerKeyGenShare({ sessionId, commit: h1.msg, rng });
  const h2 = holderKeyGenFinish(h1.state, s1.msg, { rng });
  const signer = signerKeyGenFinish(s1.state, h2.msg, { ringPedersen: readRingPedersen(rp.params) });
  const instance = generateKeyPairSync("ed25519");
  const instanceKey = instancePublicKey(
    Buffer.from(instance.publicKey.export({ format: "jwk" }).x!, "base64url"),
  );
  return { holder: h2.key, signer, instance, instanceKey };
}

export async function run(): Promise<void> {
  await modexp();
  await paillier(await generatePaillierKey({ rng, modulusProof: false, nonces: 0 }));
  await signing(await deposit());
}
