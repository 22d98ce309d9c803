// The Nitro Secure Module provider. The NSM speaks CBOR (serde's externally tagged enums):
//   request  {"Attestation": {"user_data": bstr|null, "nonce": bstr|null, "public_key": bstr|null}}
//   response {"Attestation": {"document": bstr}}  or  {"Error": "<ErrorCode>"}
// Node cannot issue the /dev/nsm ioctl itself, so the default transport runs a tiny helper binary
// (deploy/nitro/nsm-helper.c): request on stdin, response on stdout. Any other transport can be injected.
import { spawn } from "node:child_process";
import { type CborValue, decodeCbor, encodeCbor, isMap } from "../cbor.ts";
import { decodeDocument } from "../document.ts";
import {
  AttestationError,
  type AttestationProvider,
  type AttestationRequest,
  checkRequest,
} from "./provider.ts";

/** Sends one NSM request and returns the raw response bytes. */
export type NsmTransport = (request: Uint8Array) => Promise<Uint8Array>;

/** Limits of the NSM driver (include/uapi/linux/nsm.h). */
export const NSM_REQUEST_MAX = 0x1000;
export const NSM_RESPONSE_MAX = 0x3000;
/** Where the enclave image installs the helper (deploy/nitro). */
export const DEFAULT_NSM_HELPER = "/usr/local/bin/nsm-helper";

/** What each NSM error code means (nsm-api ErrorCode). */
const NSM_ERRORS: Record<string, string> = {
  InvalidArgument: "an input argument is invalid",
  InvalidIndex: "PCR index out of bounds",
  InvalidResponse: "the response does not match the request",
  ReadOnlyIndex: "the PCR is read-only",
  InvalidOperation: "the NSM lacks the capability for this request",
  BufferTooSmall: "the output buffer is too small",
  InputTooLarge: "the input is too large",
  InternalError: "internal NSM error",
};

const nsmError = (message: string) => new AttestationError("NSM_ERROR", message, "internal");

export function encodeNsmAttestationRequest(req: AttestationRequest): Uint8Array {
  checkRequest(req);
  const bytes = encodeCbor(
    new Map([
      [
        "Attestation",
        new Map<string, CborValue>([
          ["user_data", req.userData ?? null],
          ["nonce", req.nonce ?? null],
          ["public_key", req.publicKey ?? null],
        ]),
      ],
    ]),
  );
  if (bytes.length > NSM_REQUEST_MAX) {
    throw new AttestationError(
      "ATTESTATION_INPUT_TOO_LARGE",
      `NSM request of ${bytes.length} bytes exceeds ${NSM_REQUEST_MAX}`,
      "invalid",
    );
  }
  return bytes;
}

/** Returns the document bytes from an NSM response, or throws NSM_ERROR naming what the NSM said. */
export function decodeNsmAttestationResponse(response: Uint8Array): Uint8Array {
  if (response.length === 0) throw nsmError("the NSM returned an empty response");
  if (response.length > NSM_RESPONSE_MAX)
    throw nsmError(`NSM response of ${response.length} bytes is too large`);
  let v: CborValue;
  try {
    v = decodeCbor(response, {
      maxDepth: 3,
      maxItems: 4,
      maxLength: NSM_RESPONSE_MAX,
      allowIndefiniteMaps: true,
    });
  } catch (e) {
    throw nsmError(`the NSM response is not valid CBOR: ${(e as Error).message}`);
  }
  if (!isMap(v) || v.size !== 1) throw nsmError("the NSM response is not a single-entry map");
  const [[kind, body]] = [...v] as [[string | number, CborValue]];
  if (kind === "Error") {
    const code = typeof body === "string" ? body : "unknown";
    throw nsmError(
      `the NSM refused the attestation request: ${code} (${NSM_ERRORS[code] ?? "unknown error code"})`,
    );
  }
  if (kind !== "Attestation")
    throw nsmError(`unexpected NSM response ${JSON.stringify(kind)} to an attestation request`);
  const doc = isMap(body) && body.size === 1 ? body.get("document") : undefined;
  if (!(doc instanceof Uint8Array) || doc.length === 0)
    throw nsmError("the NSM attestation response has no document");
  return doc;
}

/** Runs `command` once per request: request on stdin, response on stdout, exit status 0 on success. */
export function helperTransport(
  opts: { command?: string; args?: string[]; timeoutMs?: number } = {},
): NsmTransport {
  const command = opts.command ?? DEFAULT_NSM_HELPER;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return (request) =>
    new Promise<Uint8Array>((resolve, reject) => {
      const child = spawn(command, opts.args ?? [], { stdio: ["pipe", "pipe", "pipe"] });
      const out: Buffer[] = [];
      let outLen = 0;
      let err = "";
      let settled = false;
      const finish = (e: Error | null, v?: Uint8Array) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e) reject(e);
        else resolve(v!);
      };
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        finish(nsmError(`NSM helper ${command} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      child.stdout.on("data", (d: Buffer) => {
        outLen += d.length;
        if (outLen > NSM_RESPONSE_MAX) {
          child.kill("SIGKILL");
          finish(nsmError(`NSM helper ${command} wrote more than ${NSM_RESPONSE_MAX} bytes`));
        } else out.push(d);
      });
      child.stderr.on("data", (d: Buffer) => {
        if (err.length < 2048) err += d.toString("utf8");
      });
      child.on("error", (e) => finish(nsmError(`cannot run NSM helper ${command}: ${e.message}`)));
      child.on("close", (code, signal) => {
        if (code === 0) finish(null, new Uint8Array(Buffer.concat(out)));
        else {
          const why = err.trim().split("\n")[0] || (signal ? `killed by ${signal}` : "no message");
          finish(nsmError(`NSM helper ${command} failed (exit ${code ?? signal}): ${why}`));
        }
      });
      child.stdin.on("error", () => {
        // The helper exiting early closes its stdin; its exit status reports why.
      });
      child.stdin.end(Buffer.from(request));
    });
}

export interface NitroProviderOptions {
  transport?: NsmTransport;
  /** Path of the helper binary for the default transport. */
  helperPath?: string;
}

const same = (a: Uint8Array | null, b: Uint8Array | undefined) =>
  b === undefined ? a === null : a !== null && Buffer.compare(a, b) === 0;

export class NitroProvider implements AttestationProvider {
  readonly mode = "nitro" as const;
  private readonly transport: NsmTransport;

  constructor(opts: NitroProviderOptions = {}) {
    this.transport = opts.transport ?? helperTransport({ command: opts.helperPath ?? DEFAULT_NSM_HELPER });
  }

  async attest(req: AttestationRequest): Promise<Uint8Array> {
    const doc = decodeNsmAttestationResponse(await this.transport(encodeNsmAttestationRequest(req)));
    // A structurally broken document, or one that does not carry what was asked, is never passed on.
    let fields: ReturnType<typeof decodeDocument>;
    try {
      fields = decodeDocument(doc);
    } catch (e) {
      throw nsmError(`the NSM returned a malformed attestation document: ${(e as Error).message}`);
    }
    if (
      !same(fields.nonce, req.nonce) ||
      !same(fields.userData, req.userData) ||
      !same(fields.publicKey, req.publicKey)
    ) {
      throw nsmError(
        "the NSM's attestation document does not carry the nonce, user_data and public_key requested",
      );
    }
    return doc;
  }
}
