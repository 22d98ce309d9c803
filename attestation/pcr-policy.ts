// Which enclave builds an owner accepts: a list of releases, each pinning PCR0 (image), PCR1 (kernel and boot)
// and PCR2 (application), optionally PCR8 (the signing certificate of the image).
// JSON: { "releases": [ { "name": "v1.2.0", "pcr0": "<96 hex>", "pcr1": "…", "pcr2": "…", "pcr8"?: "…" } ] }
import { ProtocolError } from "../protocol/errors.ts";

export interface PcrRelease {
  name: string;
  pcr0: Uint8Array;
  pcr1: Uint8Array;
  pcr2: Uint8Array;
  pcr8?: Uint8Array;
}

export interface PcrPolicy {
  releases: PcrRelease[];
}

export class PcrPolicyError extends ProtocolError {
  override name = "PcrPolicyError";
  constructor(message: string) {
    super("PCR_POLICY_INVALID", message, "invalid");
  }
}

const RELEASE_KEYS = new Set(["name", "pcr0", "pcr1", "pcr2", "pcr8"]);

function pcrHex(v: unknown, where: string): Uint8Array {
  if (typeof v !== "string" || !/^[0-9a-fA-F]{96}$/.test(v)) {
    throw new PcrPolicyError(`${where} must be 96 hex digits (a SHA-384 PCR)`);
  }
  return new Uint8Array(Buffer.from(v, "hex"));
}

export const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

/** Validates a policy given as JSON text or an already parsed value. Throws PcrPolicyError naming the field. */
export function loadPcrPolicy(json: string | unknown): PcrPolicy {
  let v: unknown = json;
  if (typeof json === "string") {
    try {
      v = JSON.parse(json);
    } catch (e) {
      throw new PcrPolicyError(`PCR policy is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new PcrPolicyError("PCR policy must be an object");
  const extra = Object.keys(v).filter((k) => k !== "releases");
  if (extra.length > 0) throw new PcrPolicyError(`unknown PCR policy field ${extra[0]}`);
  const releases = (v as { releases?: unknown }).releases;
  if (!Array.isArray(releases) || releases.length === 0) {
    throw new PcrPolicyError("PCR policy needs a non-empty releases array");
  }
  const names = new Set<string>();
  return {
    releases: releases.map((r, i) => {
      const where = `releases[${i}]`;
      if (typeof r !== "object" || r === null || Array.isArray(r))
        throw new PcrPolicyError(`${where} must be an object`);
      const unknown = Object.keys(r).filter((k) => !RELEASE_KEYS.has(k));
      if (unknown.length > 0) throw new PcrPolicyError(`${where} has unknown field ${unknown[0]}`);
      const o = r as Record<string, unknown>;
      if (typeof o.name !== "string" || o.name.trim() === "")
        throw new PcrPolicyError(`${where}.name must be text`);
      if (names.has(o.name)) throw new PcrPolicyError(`release name ${o.name} appears twice`);
      names.add(o.name);
      const rel: PcrRelease = {
        name: o.name,
        pcr0: pcrHex(o.pcr0, `${where}.pcr0`),
        pcr1: pcrHex(o.pcr1, `${where}.pcr1`),
        pcr2: pcrHex(o.pcr2, `${where}.pcr2`),
      };
      if (o.pcr8 !== undefined) rel.pcr8 = pcrHex(o.pcr8, `${where}.pcr8`);
      if (isZero(rel.pcr0) && isZero(rel.pcr1) && isZero(rel.pcr2)) {
        throw new PcrPolicyError(
          `${where} lists the all-zero PCRs of a debug enclave; allow debug explicitly instead`,
        );
      }
      return rel;
    }),
  };
}

const same = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.compare(a, b) === 0;

/** The release whose PCRs the document's match, if any. */
export function matchRelease(policy: PcrPolicy, pcrs: Map<number, Uint8Array>): PcrRelease | undefined {
  return policy.releases.find(
    (r) =>
      same(pcrs.get(0), r.pcr0) &&
      same(pcrs.get(1), r.pcr1) &&
      same(pcrs.get(2), r.pcr2) &&
      (r.pcr8 === undefined || same(pcrs.get(8), r.pcr8)),
  );
}
