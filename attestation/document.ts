// The Nitro attestation document: a COSE_Sign1 (RFC 9052) with ES384, tagged (18) or untagged, whose payload is
// a CBOR map of module_id, digest, timestamp, pcrs, certificate, cabundle, public_key, user_data and nonce.
// Decoding is strict about types and sizes and keeps the payload bytes exactly as received; encoding writes
// the same layout deterministically (the simulator's documents).
import { type KeyObject, sign } from "node:crypto";
import { ProtocolError } from "../protocol/errors.ts";
import { type CborMap, type CborValue, decodeCbor, encodeCbor, isMap, isTagged } from "./cbor.ts";

/** COSE_Sign1 tag. */
export const COSE_SIGN1_TAG = 18;
/** COSE algorithm identifier of ECDSA with SHA-384 on P-384. */
export const ES384 = -35;
/** The protected header Nitro sends: {1: -35}. */
export const PROTECTED_ES384 = encodeCbor(new Map([[1, ES384]]));

export const LIMITS = {
  /** Whole document. NSM responses are at most 12 KiB; leave room for a base64 or tagged wrapper. */
  document: 16 * 1024,
  moduleId: 256,
  certificate: 1024,
  cabundle: 8,
  /** user_data, nonce and public_key: real NSM documents carry up to 1024 bytes in each. */
  userField: 1024,
  pcrCount: 32,
} as const;

export class DocumentError extends ProtocolError {
  override name = "DocumentError";
  constructor(
    code: "COSE_INVALID" | "PAYLOAD_INVALID",
    message: string,
    readonly check: "cose.structure" | "payload.structure",
  ) {
    super(code, message, "invalid");
  }
}

export interface CoseSign1 {
  tagged: boolean;
  /** The protected header bstr's content, as received. */
  protectedHeader: Uint8Array;
  /** The payload bstr's content, as received: the signature is checked over exactly these bytes. */
  payload: Uint8Array;
  signature: Uint8Array;
}

export interface AttestationFields {
  moduleId: string;
  digest: string;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  pcrs: Map<number, Uint8Array>;
  certificate: Uint8Array;
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
}

export interface DecodedDocument extends AttestationFields {
  cose: CoseSign1;
}

const coseError = (m: string) => new DocumentError("COSE_INVALID", m, "cose.structure");
const payloadError = (m: string) => new DocumentError("PAYLOAD_INVALID", m, "payload.structure");

/** Parses the COSE_Sign1 envelope. Throws DocumentError with check "cose.structure". */
export function decodeCoseSign1(doc: Uint8Array): CoseSign1 {
  if (doc.length > LIMITS.document)
    throw coseError(`document of ${doc.length} bytes exceeds ${LIMITS.document}`);
  let top: CborValue;
  try {
    top = decodeCbor(doc, {
      maxDepth: 4,
      maxItems: 8,
      maxLength: LIMITS.document,
      allowIndefiniteMaps: true,
    });
  } catch (e) {
    throw coseError(`document is not valid CBOR: ${(e as Error).message}`);
  }
  let tagged = false;
  if (isTagged(top)) {
    if (top.tag !== COSE_SIGN1_TAG) throw coseError(`CBOR tag ${top.tag} is not COSE_Sign1 (18)`);
    tagged = true;
    top = top.value;
  }
  if (!Array.isArray(top) || top.length !== 4) throw coseError("COSE_Sign1 must be an array of four items");
  const [prot, unprot, payload, signature] = top as [CborValue, CborValue, CborValue, CborValue];
  if (!(prot instanceof Uint8Array)) throw coseError("protected header must be a byte string");
  let header: CborValue;
  try {
    header = decodeCbor(prot, { maxDepth: 2, maxItems: 8 });
  } catch (e) {
    throw coseError(`protected header is not valid CBOR: ${(e as Error).message}`);
  }
  if (!isMap(header) || header.size !== 1 || header.get(1) !== ES384) {
    throw coseError("protected header must be exactly {1: -35} (ES384)");
  }
  if (!isMap(unprot) || unprot.size !== 0) throw coseError("unprotected header must be an empty map");
  if (!(payload instanceof Uint8Array)) throw coseError("payload must be a byte string (not detached)");
  if (!(signature instanceof Uint8Array) || signature.length !== 96) {
    throw coseError("signature must be 96 bytes (ES384 r || s)");
  }
  return { tagged, protectedHeader: prot, payload, signature };
}

function bytes(m: CborMap, key: string, min: number, max: number): Uint8Array {
  const v = m.get(key);
  if (!(v instanceof Uint8Array)) throw payloadError(`${key} must be a byte string`);
  if (v.length < min || v.length > max)
    throw payloadError(`${key} must be ${min} to ${max} bytes, got ${v.length}`);
  return v;
}

function optionalBytes(m: CborMap, key: string): Uint8Array | null {
  const v = m.get(key);
  if (v === undefined || v === null) return null;
  if (!(v instanceof Uint8Array)) throw payloadError(`${key} must be a byte string or null`);
  if (v.length > LIMITS.userField)
    throw payloadError(`${key} of ${v.length} bytes exceeds ${LIMITS.userField}`);
  return v;
}

const PAYLOAD_KEYS = new Set([
  "module_id",
  "digest",
  "timestamp",
  "pcrs",
  "certificate",
  "cabundle",
  "public_key",
  "user_data",
  "nonce",
]);
const PCR_LENGTH: Record<string, number> = { SHA256: 32, SHA384: 48, SHA512: 64 };

/** Parses the payload map. Throws DocumentError with check "payload.structure". */
export function decodePayload(payload: Uint8Array): AttestationFields {
  let v: CborValue;
  try {
    v = decodeCbor(payload, {
      maxDepth: 3,
      maxItems: LIMITS.pcrCount,
      maxLength: LIMITS.userField,
      allowIndefiniteMaps: true,
    });
  } catch (e) {
    throw payloadError(`payload is not valid CBOR: ${(e as Error).message}`);
  }
  if (!isMap(v)) throw payloadError("payload must be a map");
  for (const k of v.keys()) {
    if (typeof k !== "string" || !PAYLOAD_KEYS.has(k))
      throw payloadError(`unknown payload field ${JSON.stringify(k)}`);
  }
  const moduleId = v.get("module_id");
  if (typeof moduleId !== "string" || moduleId.length === 0 || moduleId.length > LIMITS.moduleId) {
    throw payloadError("module_id must be a non-empty text string");
  }
  const digest = v.get("digest");
  if (typeof digest !== "string" || !(digest in PCR_LENGTH)) {
    throw payloadError("digest must be SHA256, SHA384 or SHA512");
  }
  const timestamp = v.get("timestamp");
  if (typeof timestamp !== "number" || timestamp <= 0)
    throw payloadError("timestamp must be a positive integer");
  const pcrMap = v.get("pcrs");
  if (!isMap(pcrMap) || pcrMap.size === 0) throw payloadError("pcrs must be a non-empty map");
  const pcrs = new Map<number, Uint8Array>();
  for (const [i, val] of pcrMap) {
    if (typeof i !== "number" || i < 0 || i >= LIMITS.pcrCount)
      throw payloadError("PCR index must be 0 to 31");
    if (!(val instanceof Uint8Array) || val.length !== PCR_LENGTH[digest]) {
      throw payloadError(`PCR${i} must be ${PCR_LENGTH[digest]} bytes for ${digest}`);
    }
    pcrs.set(i, val);
  }
  for (const i of [0, 1, 2]) if (!pcrs.has(i)) throw payloadError(`PCR${i} is missing`);
  const certificate = bytes(v, "certificate", 1, LIMITS.certificate);
  const bundle = v.get("cabundle");
  if (!Array.isArray(bundle) || bundle.length === 0 || bundle.length > LIMITS.cabundle) {
    throw payloadError(`cabundle must be an array of 1 to ${LIMITS.cabundle} certificates`);
  }
  const cabundle = bundle.map((c, i) => {
    if (!(c instanceof Uint8Array) || c.length === 0 || c.length > LIMITS.certificate) {
      throw payloadError(`cabundle[${i}] must be a certificate of 1 to ${LIMITS.certificate} bytes`);
    }
    return c;
  });
  return {
    moduleId,
    digest,
    timestamp,
    pcrs,
    certificate,
    cabundle,
    publicKey: optionalBytes(v, "public_key"),
    userData: optionalBytes(v, "user_data"),
    nonce: optionalBytes(v, "nonce"),
  };
}

/** Decodes envelope and payload; throws DocumentError naming the structural check that failed. */
export function decodeDocument(doc: Uint8Array): DecodedDocument {
  const cose = decodeCoseSign1(doc);
  return { ...decodePayload(cose.payload), cose };
}

/** COSE Sig_structure for COSE_Sign1 with empty external AAD, over the received header and payload bytes. */
export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeCbor(["Signature1", protectedHeader, new Uint8Array(0), payload]);
}

// ---- encoding (simulator) ----

/** The payload in Nitro's field order, definite lengths, shortest form. */
export function encodePayload(f: AttestationFields): Uint8Array {
  const pcrs: CborMap = new Map([...f.pcrs].sort(([a], [b]) => a - b));
  return encodeCbor(
    new Map<string, CborValue>([
      ["module_id", f.moduleId],
      ["digest", f.digest],
      ["timestamp", f.timestamp],
      ["pcrs", pcrs],
      ["certificate", f.certificate],
      ["cabundle", f.cabundle],
      ["public_key", f.publicKey],
      ["user_data", f.userData],
      ["nonce", f.nonce],
    ]),
  );
}

/** Signs `payload` (any bytes; normally encodePayload's output) as an ES384 COSE_Sign1 with `leafKey`. */
export function signCoseSign1(
  payload: Uint8Array,
  leafKey: KeyObject,
  opts: { tagged?: boolean } = {},
): Uint8Array {
  const signature = sign("sha384", sigStructure(PROTECTED_ES384, payload), {
    key: leafKey,
    dsaEncoding: "ieee-p1363",
  });
  const body: CborValue = [PROTECTED_ES384, new Map(), payload, new Uint8Array(signature)];
  return encodeCbor(opts.tagged ? { tag: COSE_SIGN1_TAG, value: body } : body);
}

/** Encodes and signs a complete document; checks the fields first so the simulator never emits what the
 * verifier would refuse. */
export function encodeDocument(
  f: AttestationFields,
  leafKey: KeyObject,
  opts: { tagged?: boolean } = {},
): Uint8Array {
  const payload = encodePayload(f);
  decodePayload(payload);
  return signCoseSign1(payload, leafKey, opts);
}
