// Schnorr proof of knowledge of x with X = x·G: A = a·G for a fresh random a, e = H(context, X, A) mod q,
// z = a + e·x mod q. The context names the session, the role of X and whatever else the proof must be bound to.
import type { DlogProof } from "../../../proto/gen/ecdsa2p.ts";
import type { Point } from "../../encoding.ts";
import { check } from "../../errors.ts";
import type { Rng } from "../../rng.ts";
import { readPoint, readScalar, writePoint, writeScalar } from "../codec.ts";
import { mulG, Q, randomScalar, schnorrPoint } from "../ec.ts";
import { challengeScalar, Transcript } from "../fiat-shamir.ts";

export interface DlogContext {
  sessionId: Uint8Array;
  /** What X is, e.g. "se-share", "owner-nonce". */
  role: string;
  /** Further values the proof is bound to (commitments, the digest being signed). */
  bind?: Uint8Array[];
}

function challenge(ctx: DlogContext, X: Point, A: Point): bigint {
  const t = new Transcript("dlog")
    .bytes("sid", ctx.sessionId)
    .bytes("role", new TextEncoder().encode(ctx.role));
  for (const b of ctx.bind ?? []) t.bytes("bind", b);
  return challengeScalar(t.point("X", X).point("A", A).digest());
}

export function proveDlog(x: bigint, X: Point, ctx: DlogContext, rng: Rng): DlogProof {
  for (;;) {
    const a = randomScalar(rng);
    const A = mulG(a);
    const z = (a + challenge(ctx, X, A) * x) % Q;
    if (z !== 0n) return { commitment: writePoint(A), response: writeScalar(z) };
  }
}

export function verifyDlog(X: Point, proof: DlogProof | undefined, ctx: DlogContext, what: string): void {
  check(proof, "DLOG_PROOF_MISSING", `${what}: proof of knowledge of the discrete log is missing`);
  const A = readPoint(proof.commitment, `${what} proof commitment`);
  const z = readScalar(proof.response, `${what} proof response`);
  check(
    schnorrPoint(z, challenge(ctx, X, A), X).equals(A),
    "DLOG_PROOF_INVALID",
    `${what}: proof of knowledge of the discrete log does not verify (z·G ≠ A + e·X)`,
  );
}
