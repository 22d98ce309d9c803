// Simulated Nitro measurements. On Nitro, PCR0/1/2 are computed by the hypervisor from the enclave image
// (whole image, kernel + boot ramdisk, application). The simulator derives the same three registers from what
// it actually runs, so changing a line of enclave code (or of anything it imports) changes PCR0 and PCR2.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface Measurements {
  pcr0: Buffer;
  pcr1: Buffer;
  pcr2: Buffer;
}

/**
 * Folders (and files) that make up the enclave's code, relative to the project root: the sources, and the
 * compiled JavaScript that bin/enclave.js runs instead when dist/ is fresh (bin/launch.js), so that what runs is
 * what is measured either way.
 */
export const ENCLAVE_CODE = [
  "enclave",
  "protocol",
  "attestation",
  "proto",
  "dist/enclave",
  "dist/protocol",
  "dist/attestation",
  "dist/proto",
  "bin/enclave.js",
  "bin/launch.js",
  "package-lock.json",
];

const sha384 = (data: Uint8Array | string) => createHash("sha384").update(data).digest();

/** PCR extension as Nitro does it: PCR' = SHA-384(PCR || digest), starting from 48 zero bytes. */
export function extend(pcr: Buffer, digest: Buffer): Buffer {
  return sha384(Buffer.concat([pcr, digest]));
}

function listFiles(root: string, rel: string): string[] {
  const abs = path.join(root, rel);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(abs);
  } catch {
    return [];
  }
  if (st.isFile()) return [rel];
  if (!st.isDirectory()) return [];
  return readdirSync(abs)
    .sort()
    .flatMap((name) => listFiles(root, path.posix.join(rel, name)));
}

export function projectRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
}

/** Computes the simulator's PCRs from the code on disk under `root`. */
export function measure(root = projectRoot()): Measurements {
  const zero: Buffer = Buffer.alloc(48);
  // PCR1: the "kernel and boot" layer, here the JavaScript runtime that executes the enclave.
  const runtime = JSON.stringify({
    node: process.version,
    arch: process.arch,
    openssl: process.versions.openssl,
  });
  const pcr1 = extend(zero, sha384(runtime));
  // PCR2: the application, every enclave source file by path and content.
  let pcr2: Buffer = zero;
  for (const rel of ENCLAVE_CODE.flatMap((entry) => listFiles(root, entry))) {
    pcr2 = extend(pcr2, sha384(Buffer.concat([Buffer.from(`${rel}\0`), readFileSync(path.join(root, rel))])));
  }
  // PCR0: the whole image.
  const pcr0 = extend(extend(zero, pcr1), pcr2);
  return { pcr0, pcr1, pcr2 };
}
