// The owner's per-coin Paillier keys (DESIGN.md §3.1, issue #21): where each one comes from, and its cached copy in
// the wallet file.
//
// Derivation (a wallet format, like the key tree of keys.ts: changing it loses keys after a restore):
//   path     = m/8338'/<coin>'/<account>'/3'/<slot>'/<keygen>'     (all hardened; coin 0 mainnet, 1 otherwise)
//              slot   = the coin's key slot (the index of its proof key C and backup key B, roles 0 and 1)
//              keygen = 0 for the slot's first keygen; 1, 2, … for later ones on the same slot (e.g. a second coin
//                       sent to the same receive address), so that no two keygens of one wallet share N
//   k_path   = the BIP32 private key at path (32 bytes)
//   seed     = HMAC-SHA512(key = "statechain-wallet/v1/paillier-key-seed", msg = k_path ‖ UTF-8(path))  (64 bytes)
//   key      = paillierKeyFromSeed(seed) (protocol/ecdsa2p/seeded-paillier.ts: N = p·q, 2048 bits, p ≡ q ≡ 3 mod 4)
//
// The cache (table paillier_keys, migration wallet-003-paillier_keys): per path N, the key id and Π^mod in the
// clear, p and q sealed under the passphrase key exactly as the mnemonic is (secret-box.ts, AES-256-GCM, the
// associated data naming the row: "paillier/<path>/pq"). A missing row only costs CPU: the key is rebuilt from the
// seed. A row is deleted when its coin is sent or closed.
import { createHmac } from "node:crypto";
import { PaillierBlumProof } from "../proto/gen/ecdsa2p.ts";
import { bitLength } from "../protocol/ecdsa2p/arith.ts";
import { type PaillierKey, paillierKeyFromPrimes } from "../protocol/ecdsa2p/paillier.ts";
import { PAILLIER_MIN_BITS } from "../protocol/ecdsa2p/params.ts";
import { KEY_ID_BYTES } from "../protocol/ecdsa2p/proofs/mod.ts";
import { secretBytes, wipe } from "../protocol/ecdsa2p/secret.ts";
import { bigIntToBytes, bytesToBigInt } from "../protocol/encoding.ts";
import { check, fail } from "../protocol/errors.ts";
import { type Rng, systemRng } from "../protocol/rng.ts";
import type { WalletNetwork } from "./address.ts";
import { coinType, KEY_PURPOSE, type KeyTree } from "./keys.ts";
import type { WalletStore } from "./store.ts";

/** The role level of Paillier key paths (after proof 0, backup 1, funding 2 of keys.ts). */
export const PAILLIER_ROLE = 3;
export const PAILLIER_SEED_LABEL = "statechain-wallet/v1/paillier-key-seed";

const HARDENED_MAX = 0x7fffffff;
const PATH_RE = /^m\/(\d+)'\/(\d+)'\/(\d+)'\/(\d+)'\/(\d+)'\/(\d+)'$/;

export interface PaillierKeyPathParts {
  network: "bitcoin" | "other";
  account: number;
  slot: number;
  keygen: number;
}

/** The path of a coin's Paillier key: slot = the coin's key slot, keygen = which keygen on that slot (from 0). */
export function paillierKeyPath(network: WalletNetwork, account: number, slot: number, keygen = 0): string {
  for (const [v, what] of [
    [account, "account"],
    [slot, "key slot"],
    [keygen, "keygen number"],
  ] as const)
    if (!Number.isInteger(v) || v < 0 || v > HARDENED_MAX) fail("KEY_INDEX", `${what} ${v} is out of range`);
  return `m/${KEY_PURPOSE}'/${coinType(network)}'/${account}'/${PAILLIER_ROLE}'/${slot}'/${keygen}'`;
}

/** Parses (and checks the shape of) a Paillier key path. */
export function parsePaillierKeyPath(path: string): PaillierKeyPathParts {
  const m = PATH_RE.exec(path);
  check(
    m,
    "KEY_PATH",
    `${path} is not a Paillier key path (m/${KEY_PURPOSE}'/c'/a'/${PAILLIER_ROLE}'/slot'/n')`,
  );
  const [purpose, coin, account, role, slot, keygen] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  check(
    purpose === KEY_PURPOSE && role === PAILLIER_ROLE && coin <= 1,
    "KEY_PATH",
    `${path} is not a Paillier key path (m/${KEY_PURPOSE}'/c'/a'/${PAILLIER_ROLE}'/slot'/n')`,
  );
  for (const v of [account, slot, keygen])
    check(v <= HARDENED_MAX, "KEY_PATH", `${path}: index ${v} is out of range`);
  return { network: coin === 0 ? "bitcoin" : "other", account, slot, keygen };
}

/**
 * The 64-byte seed of the Paillier key at `path` (in an ArrayBuffer of its own, for the pool to transfer to its
 * worker; the caller wipes it). Refuses a path of another network or account than `keys`.
 */
export function paillierSeed(keys: KeyTree, path: string): Uint8Array {
  const parts = parsePaillierKeyPath(path);
  check(
    parts.account === keys.account && (parts.network === "bitcoin") === (keys.network === "bitcoin"),
    "KEY_PATH",
    `${path} is not a path of this wallet (network ${keys.network}, account ${keys.account})`,
  );
  const node = keys.secretAt(path);
  const digest = createHmac("sha512", PAILLIER_SEED_LABEL).update(node).update(path, "utf8").digest();
  wipe(node);
  const seed = secretBytes(digest.length);
  seed.set(digest);
  wipe(digest);
  return seed;
}

// --- the cache in the wallet file ----------------------------------------------------------------------------

export const paillierSecretLabel = (path: string) => `paillier/${path}/pq`;

/** u32 len ‖ p ‖ u32 len ‖ q, built in one off-heap buffer (no pooled Buffer copies of p and q left behind). */
function packSecret(p: Uint8Array, q: Uint8Array): Uint8Array {
  const out = secretBytes(8 + p.length + q.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, p.length);
  out.set(p, 4);
  view.setUint32(4 + p.length, q.length);
  out.set(q, 8 + p.length);
  return out;
}

function unpackSecret(b: Uint8Array, path: string): { p: bigint; q: bigint } {
  const what = `stored Paillier key ${path}`;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  check(b.length >= 8, "WALLET_CORRUPT", `${what}: truncated`);
  const lp = view.getUint32(0);
  check(8 + lp <= b.length, "WALLET_CORRUPT", `${what}: truncated p`);
  const lq = view.getUint32(4 + lp);
  check(8 + lp + lq === b.length, "WALLET_CORRUPT", `${what}: wrong length`);
  return { p: bytesToBigInt(b.subarray(4, 4 + lp)), q: bytesToBigInt(b.subarray(8 + lp)) };
}

interface PaillierKeyRow {
  path: string;
  n: Buffer;
  key_id: Buffer;
  secret_sealed: Buffer;
  modulus_proof: Buffer | null;
  created_at: number;
}

/** Stores (or replaces) the key at `path`: N, id and Π^mod in the clear, p and q sealed. */
export async function savePaillierKey(
  store: WalletStore,
  path: string,
  key: PaillierKey,
  now: () => number = Date.now,
): Promise<void> {
  parsePaillierKeyPath(path);
  const plain = packSecret(key.secret.p, key.secret.q);
  try {
    await store.db.run(
      `INSERT OR REPLACE INTO paillier_keys (path, n, key_id, secret_sealed, modulus_proof, created_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
      [
        path,
        Buffer.from(bigIntToBytes(key.n)),
        Buffer.from(key.id),
        store.seal(plain, paillierSecretLabel(path)),
        key.modulusProof ? Buffer.from(PaillierBlumProof.encode(key.modulusProof).finish()) : null,
        now(),
      ],
    );
  } finally {
    wipe(plain);
  }
}

/**
 * The cached key at `path`, or undefined when there is none (derive it then). Checks what the row claims: p·q = N,
 * p ≠ q, p ≡ q ≡ 3 (mod 4), at least PAILLIER_MIN_BITS bits, and that Π^mod names the stored key id. Whether p and
 * q are the primes the derivation gives is not re-checked (that is the prime search again); the sealed blob's
 * associated data binds it to its path, so a row copied from another path does not open. `nonces` encryption
 * nonces are computed ahead (default none: takeNonce then makes them at use).
 */
export async function loadPaillierKey(
  store: WalletStore,
  path: string,
  opts: { nonces?: number; rng?: Rng } = {},
): Promise<PaillierKey | undefined> {
  parsePaillierKeyPath(path);
  const row = await store.db.get<PaillierKeyRow>("SELECT * FROM paillier_keys WHERE path = ?", [path]);
  if (!row) return undefined;
  const plain = store.open(row.secret_sealed, paillierSecretLabel(path));
  let p: bigint;
  let q: bigint;
  try {
    ({ p, q } = unpackSecret(plain, path));
  } finally {
    wipe(plain);
  }
  const n = bytesToBigInt(row.n);
  const what = `stored Paillier key ${path}`;
  check(p * q === n, "WALLET_CORRUPT", `${what}: p·q ≠ N`);
  check(p !== q && p % 4n === 3n && q % 4n === 3n, "WALLET_CORRUPT", `${what}: not two Blum primes`);
  check(bitLength(n) >= PAILLIER_MIN_BITS, "WALLET_CORRUPT", `${what}: N has ${bitLength(n)} bits`);
  check(
    row.key_id.length === KEY_ID_BYTES,
    "WALLET_CORRUPT",
    `${what}: key id of ${row.key_id.length} bytes`,
  );
  const modulusProof = row.modulus_proof ? PaillierBlumProof.decode(row.modulus_proof) : undefined;
  check(
    !modulusProof || Buffer.from(modulusProof.keyId).equals(row.key_id),
    "WALLET_CORRUPT",
    `${what}: Π^mod is for another key id`,
  );
  // paillierKeyFromPrimes draws an id of its own; the stored one, to which the stored Π^mod is bound, replaces it.
  const key = paillierKeyFromPrimes(p, q, {
    rng: opts.rng ?? systemRng,
    modulusProof: false,
    nonces: opts.nonces ?? 0,
  });
  return { ...key, id: new Uint8Array(row.key_id), modulusProof };
}

/** Deletes the cached key at `path` (when its coin is sent or closed); true when there was one. */
export async function deletePaillierKey(store: WalletStore, path: string): Promise<boolean> {
  parsePaillierKeyPath(path);
  const res = await store.db.run("DELETE FROM paillier_keys WHERE path = ?", [path]);
  return res.changes > 0;
}

/** The pool's cache (paillier-pool.ts) backed by the wallet file. */
export const walletPaillierCache = (store: WalletStore, now: () => number = Date.now) => ({
  load: (path: string) => loadPaillierKey(store, path),
  save: (path: string, key: PaillierKey) => savePaillierKey(store, path, key, now),
  remove: async (path: string) => void (await deletePaillierKey(store, path)),
});
