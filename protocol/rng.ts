// Randomness is passed in, so protocol code stays free of hidden globals and tests can inject a recorder.
import { randomBytes } from "node:crypto";

export type Rng = (n: number) => Uint8Array;

/** The operating system's CSPRNG (OpenSSL's RAND_bytes seeded from getrandom). */
export const systemRng: Rng = (n) => new Uint8Array(randomBytes(n));
