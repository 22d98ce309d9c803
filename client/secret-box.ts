// Secrets at rest: a key from scrypt(passphrase, per-wallet salt), then AES-256-GCM per secret with a random
// 96-bit IV. The associated data names where a sealed value belongs ("seed", "coin/<id>/share", …), so a blob
// copied into another row does not open there. Layout: version (1) ‖ IV (12) ‖ tag (16) ‖ ciphertext.
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from "node:crypto";
import { ProtocolError } from "../protocol/errors.ts";

export interface KdfParams {
  /** scrypt cost N (a power of two, at least 2^15). */
  N: number;
  r: number;
  p: number;
  salt: Uint8Array;
}

export const MIN_SCRYPT_N = 2 ** 15;
export const DEFAULT_SCRYPT_N = 2 ** 17;
const BOX_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class WalletLockedError extends ProtocolError {
  override name = "WalletLockedError";
  constructor(message: string) {
    super("WRONG_PASSPHRASE", message, "unauthenticated");
  }
}

export function newKdfParams(N = DEFAULT_SCRYPT_N): KdfParams {
  checkN(N);
  return { N, r: 8, p: 1, salt: randomBytes(16) };
}

function checkN(N: number): void {
  if (!Number.isInteger(N) || N < MIN_SCRYPT_N || (N & (N - 1)) !== 0)
    throw new ProtocolError("KDF_PARAMS", `scrypt N must be a power of two ≥ ${MIN_SCRYPT_N}, got ${N}`);
}

/** The 32-byte AES key for `passphrase`. Takes about 0.1–0.5 s at the default cost, on purpose. */
export async function deriveKey(passphrase: string, kdf: KdfParams): Promise<Buffer> {
  checkN(kdf.N);
  if (passphrase.length === 0) throw new ProtocolError("PASSPHRASE_EMPTY", "the passphrase is empty");
  return new Promise((resolve, reject) =>
    scrypt(
      Buffer.from(passphrase.normalize("NFKC"), "utf8"),
      kdf.salt,
      32,
      { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + (1 << 20) },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

export function seal(key: Uint8Array, plaintext: Uint8Array, label: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(Buffer.from(`statechain-wallet/v1/${label}`, "utf8"));
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([Buffer.of(BOX_VERSION), iv, c.getAuthTag(), body]);
}

/** Opens a sealed value; a wrong key, a tampered blob or a blob from another place all fail alike. */
export function open(key: Uint8Array, blob: Uint8Array, label: string): Buffer {
  const b = Buffer.from(blob);
  if (b.length < 1 + IV_BYTES + TAG_BYTES || b[0] !== BOX_VERSION)
    throw new WalletLockedError(`the sealed ${label} is malformed`);
  const d = createDecipheriv("aes-256-gcm", key, b.subarray(1, 1 + IV_BYTES));
  d.setAAD(Buffer.from(`statechain-wallet/v1/${label}`, "utf8"));
  d.setAuthTag(b.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([d.update(b.subarray(1 + IV_BYTES + TAG_BYTES)), d.final()]);
  } catch {
    throw new WalletLockedError(`the sealed ${label} does not open with this passphrase (or was altered)`);
  }
}
