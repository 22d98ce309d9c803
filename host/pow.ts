// Stateless proof-of-work challenges guarding DepositInit: challenge = expiry ‖ bits ‖ random ‖ HMAC(key, expiry ‖
// bits ‖ random). A solution is valid when SHA-256(challenge ‖ proof_key ‖ solution) has the challenge's `bits`
// leading zero bits; each challenge is accepted once (the store records used ones until they expire). The
// difficulty is chosen at issue, so it can rise with the load (adaptive: audit #19.2).
import { createHmac, randomBytes } from "node:crypto";
import { equalCT } from "../protocol/encoding.ts";
import { check } from "../protocol/errors.ts";
import { leadingZeroBits, powDigest } from "../protocol/pow.ts";

const MAC_LEN = 16;

export class PowGuard {
  constructor(
    private readonly key: Uint8Array,
    readonly bits: number,
    readonly ttlMs = 10 * 60_000,
  ) {}

  issue(now: number, bits = this.bits): { challenge: Buffer; expiresAt: number; bits: number } {
    const expiresAt = now + this.ttlMs;
    const body = Buffer.alloc(8 + 16);
    body.writeBigUInt64BE(BigInt(expiresAt));
    body[8] = Math.max(this.bits, Math.min(bits, 32));
    randomBytes(15).copy(body, 9);
    const mac = createHmac("sha256", this.key).update(body).digest().subarray(0, MAC_LEN);
    return { challenge: Buffer.concat([body, mac]), expiresAt, bits: body[8]! };
  }

  /** Checks authenticity, expiry and the work; returns the expiry (for the replay record). */
  verify(challenge: Uint8Array, proofKey: Uint8Array, solution: Uint8Array, now: number): number {
    check(challenge.length === 24 + MAC_LEN, "POW_CHALLENGE", "proof-of-work challenge is malformed");
    check(
      solution.length > 0 && solution.length <= 32,
      "POW_SOLUTION",
      "proof-of-work solution must be 1 to 32 bytes",
    );
    const body = challenge.subarray(0, 24);
    const mac = createHmac("sha256", this.key).update(body).digest().subarray(0, MAC_LEN);
    check(
      equalCT(mac, challenge.subarray(24)),
      "POW_CHALLENGE",
      "proof-of-work challenge was not issued by this SE",
      "unauthenticated",
    );
    const expiresAt = Number(Buffer.from(body).readBigUInt64BE(0));
    check(
      expiresAt >= now,
      "POW_EXPIRED",
      "proof-of-work challenge has expired; ask for a new one",
      "precondition",
    );
    const bits = Math.max(this.bits, body[8]!);
    const zeros = leadingZeroBits(powDigest(challenge, proofKey, solution));
    check(
      zeros >= bits,
      "POW_INSUFFICIENT",
      `proof of work has ${zeros} leading zero bits, ${bits} required`,
    );
    return expiresAt;
  }
}
