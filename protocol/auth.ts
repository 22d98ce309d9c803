// Request authentication by proof keys (common.v1.Auth): a BIP340 signature by the x-only form of the key over
//   SHA-256("statechain/v1/auth" || u16(len(method)) || method || SHA-256(request encoded with an empty signature)).
// Freshness (the clock window) is checked here with an injected time; replay (nonce reuse) is the caller's store.
import type { Auth } from "../proto/gen/common.ts";
import { bip340Sign, bip340Verify } from "./bip340.ts";
import { concatBytes, parsePoint } from "./encoding.ts";
import { check } from "./errors.ts";
import type { Rng } from "./rng.ts";
import { sha256 } from "./smt/hash.ts";

export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

export type Authenticated = { auth?: Auth | undefined };

const TAG = new TextEncoder().encode("statechain/v1/auth");
export const NONCE_MIN = 16;
export const NONCE_MAX = 64;
/** Requests signed further than this from the verifier's clock are refused. */
export const DEFAULT_WINDOW_MS = 5 * 60_000;

/**
 * The digest a request's auth signs. SHA-256 is OpenSSL's (the tree's one-shot helper): requests carry proofs of
 * tens of KB, hashed by the wallet, the host and the enclave alike (noble's took ~9 ms per transfer in the enclave).
 */
export function authDigest(method: string, unsignedRequest: Uint8Array): Uint8Array {
  const m = new TextEncoder().encode(method);
  const len = new Uint8Array([m.length >> 8, m.length & 0xff]);
  return sha256(concatBytes(TAG, len, m, sha256(unsignedRequest)));
}

function unsignedBytes<T extends Authenticated>(codec: Codec<T>, req: T): Uint8Array {
  const auth = req.auth;
  const copy = { ...req, auth: auth ? { ...auth, signature: Buffer.alloc(0) } : undefined };
  return codec.encode(copy as T).finish();
}

/** Returns `req` with `auth` filled in: a fresh nonce, the time, and the signature by `secretKey`. */
export function signRequest<T extends Authenticated>(
  codec: Codec<T>,
  method: string,
  req: T,
  secretKey: Uint8Array,
  opts: { nowMs: number; rng: Rng },
): T {
  const auth: Auth = {
    nonce: Buffer.from(opts.rng(32)),
    timestampMs: BigInt(opts.nowMs),
    signature: Buffer.alloc(0),
  };
  const withAuth = { ...req, auth };
  const sig = bip340Sign(authDigest(method, unsignedBytes(codec, withAuth)), secretKey, opts.rng(32));
  return { ...withAuth, auth: { ...auth, signature: Buffer.from(sig) } };
}

/** Checks the signature of `req` by `proofKey` (33 bytes) and its freshness; throws UNAUTHENTICATED errors. */
export function verifyRequest<T extends Authenticated>(
  codec: Codec<T>,
  method: string,
  req: T,
  proofKey: Uint8Array,
  opts: { nowMs: number; windowMs?: number },
): void {
  const auth = req.auth;
  check(auth, "AUTH_MISSING", "request is not signed (auth missing)", "unauthenticated");
  check(
    auth.nonce.length >= NONCE_MIN && auth.nonce.length <= NONCE_MAX,
    "AUTH_NONCE",
    `auth nonce must be ${NONCE_MIN} to ${NONCE_MAX} bytes, got ${auth.nonce.length}`,
    "unauthenticated",
  );
  check(auth.signature.length === 64, "AUTH_SIGNATURE", "auth signature must be 64 bytes", "unauthenticated");
  const skew = Math.abs(Number(auth.timestampMs) - opts.nowMs);
  const window = opts.windowMs ?? DEFAULT_WINDOW_MS;
  check(
    skew <= window,
    "AUTH_STALE",
    `request time is ${Math.round(skew / 1000)} s from the server's clock (limit ${window / 1000} s)`,
    "unauthenticated",
  );
  parsePoint(proofKey, "proof key");
  // BIP340 verifies under the x coordinate: the 33-byte compressed key without its parity byte.
  const ok = bip340Verify(
    auth.signature,
    authDigest(method, unsignedBytes(codec, req)),
    proofKey.subarray(1),
  );
  check(ok, "AUTH_SIGNATURE", "auth signature does not verify under the proof key", "unauthenticated");
}
