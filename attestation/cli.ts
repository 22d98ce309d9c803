// `verify-attestation`: checks an attestation document for an owner and says why it is or is not valid.
// Exit status 0 valid, 1 invalid, 2 usage or read error, 3 valid but no PCR policy pinned the enclave's code.
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadPcrPolicy, type PcrPolicy } from "./pcr-policy.ts";
import { AWS_NITRO_ROOT_G1_SHA256, pemToDer, sha256Hex } from "./roots.ts";
import { type VerificationResult, type VerifyOptions, verifyAttestation } from "./verify.ts";

export const HELP = `verify-attestation — verify an AWS Nitro Enclaves attestation document

Usage:
  verify-attestation <file|-> [options]

Reads a COSE_Sign1 attestation document from <file> (or stdin for -) and checks its certificate chain up to
the pinned AWS Nitro root G1 (SHA-256 ${AWS_NITRO_ROOT_G1_SHA256}), its signature, age, PCRs and,
when given, nonce and deletion receipt. Prints the document's fields and a verdict naming every failed check.

Options:
  --format <f>         auto (default), b64, hex or bin
  --at <time>          verify as of this time: Unix seconds or ISO-8601 (default now)
  --pcrs <file>        PCR policy JSON: {"releases": [{"name", "pcr0", "pcr1", "pcr2", "pcr8"?}]}
  --allow-debug        accept a debug enclave (PCR0/1/2 all zero)
  --nonce <hex>        the nonce the document must carry
  --receipt <file>     deletion receipt (CBOR); the document's user_data must be its SHA-256
  --prev-receipt <file> the enclave's receipt before --receipt; checks the receipt chain link
  --sim-root <pem>     also trust this simulator root certificate (the verdict then says SIMULATOR)
  --max-age <seconds>  maximum age of the document (default 10800)
  --allow-unpinned     without --pcrs, accept a valid document whatever enclave code it attests (exit 0)
  --json               print one JSON object (also for usage and read errors): verdict, valid, pinned,
                       simulator, checks, failures, hint, document; or {"verdict": "ERROR", "error": …}
  -h, --help           this text
  -V, --version        the version

A document recorded earlier (e.g. by \`wallet verify --save-attestations\`) has certificates that lived about
three hours: check it as of its own time with --at (the verdict says so when only the time fails).

Exit status: 0 valid, 1 invalid (also an input that is no document: empty, or neither CBOR, hex nor base64),
2 usage or read error, 3 valid but unpinned: no --pcrs policy said which enclave code to accept (the
signature and chain prove a genuine enclave, not which code it runs; --allow-unpinned accepts that).
`;

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readStdin: () => Buffer;
  readFile: (path: string) => Buffer;
}

export const processIo: CliIo = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readStdin: () => readFileSync(0),
  readFile: (p) => readFileSync(p),
};

class UsageError extends Error {}

/** A file that cannot be read: a usage error (exit 2), named apart in --json output. */
class ReadError extends UsageError {}

/** The input holds no attestation document (empty, or bytes of no known form): invalid, exit 1. */
class InvalidInputError extends Error {}

/** package.json: one directory up from the sources (attestation/), two from the compiled dist/attestation/. */
const VERSION: string = JSON.parse(
  readFileSync(
    new URL(
      existsSync(new URL("../package.json", import.meta.url)) ? "../package.json" : "../../package.json",
      import.meta.url,
    ),
    "utf8",
  ),
).version;

/** What an input that is no document is, in words: empty, text of no known encoding, or binary. */
function notADocument(input: Buffer, name: string): string {
  if (input.toString("latin1").trim() === "") return `${name} is empty: it holds no attestation document`;
  const head = input.subarray(0, 8).toString("hex").replace(/(..)/g, "$1 ").trim();
  const printable = input
    .subarray(0, 256)
    .every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  return printable
    ? `${name} is not an attestation document: text that is neither hex nor base64 of a COSE_Sign1 document`
    : `${name} is not an attestation document: binary that is not CBOR COSE_Sign1 (it starts ${head}; a document starts 84 or d2 84)`;
}

/** Raw bytes are recognised by their first byte (0x84 untagged, 0xd2 tag 18); text as hex, then base64. */
export function decodeInput(input: Buffer, format: string): Uint8Array {
  const text = () => input.toString("latin1").replace(/\s+/g, "");
  const hex = (s: string) => {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(s)) throw new UsageError("input is not hex");
    return new Uint8Array(Buffer.from(s, "hex"));
  };
  const b64 = (s: string) => {
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(s) || s.replace(/=+$/, "").length % 4 === 1) {
      throw new UsageError("input is not base64");
    }
    return new Uint8Array(Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64"));
  };
  switch (format) {
    case "bin":
      return new Uint8Array(input);
    case "hex":
      return hex(text());
    case "b64":
      return b64(text());
    case "auto": {
      if (input.length > 0 && (input[0] === 0x84 || input[0] === 0xd2)) return new Uint8Array(input);
      const t = text();
      if (/^(?:d2)?84/i.test(t) && /^(?:[0-9a-fA-F]{2})+$/.test(t)) return hex(t);
      return b64(t);
    }
    default:
      throw new UsageError(`unknown --format ${format} (auto, b64, hex or bin)`);
  }
}

export function parseTime(s: string): number {
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  if (/^\d{4}-\d{2}-\d{2}/.test(s)) {
    const t = Date.parse(s);
    if (!Number.isNaN(t)) return t;
  }
  throw new UsageError(`--at ${s} is neither Unix seconds nor an ISO-8601 time`);
}

const hexOf = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString("hex"));

function field(name: string, b: Uint8Array | null): string {
  if (b === null) return `${name.padEnd(12)}absent`;
  const h = Buffer.from(b).toString("hex");
  return `${name.padEnd(12)}${b.length} bytes  ${h.length > 64 ? `${h.slice(0, 64)}…` : h}`;
}

export function formatText(r: VerificationResult, opts: { allowUnpinned?: boolean } = {}): string {
  const lines: string[] = [];
  const d = r.document;
  if (d) {
    lines.push(`module_id   ${d.moduleId}`);
    lines.push(`time        ${new Date(d.timestamp).toISOString()} (${d.timestamp} ms)`);
    lines.push(`digest      ${d.digest}`);
    lines.push(`form        COSE_Sign1, ${d.cose.tagged ? "tagged (18)" : "untagged"}`);
    const zero: number[] = [];
    for (const [i, v] of [...d.pcrs].sort(([a], [b]) => a - b)) {
      if (i > 2 && v.every((x) => x === 0)) zero.push(i);
      else lines.push(`PCR${String(i).padEnd(9)}${Buffer.from(v).toString("hex")}`);
    }
    if (zero.length > 0) lines.push(`PCR${zero.join(",")}: zero`);
    lines.push(field("public_key", d.publicKey), field("user_data", d.userData), field("nonce", d.nonce));
    const rootName = r.simulator
      ? "SIMULATOR root (given with --sim-root)"
      : r.checks["chain.root_pinned"]
        ? "AWS Nitro Enclaves root G1 (pinned)"
        : "not a trusted root";
    lines.push(`root        ${rootName}, SHA-256 ${sha256Hex(d.cabundle[0]!).slice(0, 16)}…`);
    if (r.release) lines.push(`release     ${r.release}`);
    if (r.receipt) {
      const x = r.receipt;
      lines.push(
        `receipt     ${x.type}, epoch ${x.epoch}, statechain ${Buffer.from(x.statechain).toString("hex")}, ` +
          `${new Date(x.time).toISOString()}`,
      );
    }
  }
  lines.push("", "checks:");
  for (const [name, ok] of Object.entries(r.checks)) {
    const why = ok
      ? ""
      : ` — ${r.failures
          .filter((f) => f.check === name)
          .map((f) => f.message)
          .join("; ")}`;
    lines.push(`  ${ok ? "ok  " : "FAIL"} ${name}${why}`);
  }
  for (const name of r.notChecked) lines.push(`  --   ${name} — not checked (an earlier check failed)`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  lines.push("");
  const pinned = isPinned(r);
  if (r.valid && !pinned && !opts.allowUnpinned) {
    lines.push(
      `verdict: UNPINNED — every check passed${r.simulator ? " (SIMULATOR root)" : ""}, but no PCR policy says which enclave code to accept: give --pcrs <file> with the releases you trust, or --allow-unpinned to accept any code`,
    );
  } else if (r.valid) {
    const unpinned = pinned ? "" : " (unpinned: any enclave code accepted with --allow-unpinned)";
    lines.push(
      r.simulator
        ? `verdict: VALID${unpinned} — SIMULATOR document: signed by a simulator root, NOT by AWS Nitro hardware`
        : `verdict: VALID${unpinned}`,
    );
  } else {
    const failed = [...r.failures.map((f) => f.check), ...r.notChecked.map((c) => `${c} (not checked)`)];
    lines.push(
      `verdict: INVALID${r.simulator ? " (SIMULATOR root)" : ""} — failed: ${[...new Set(failed)].join(", ")}`,
    );
    const hint = timeHint(r);
    if (hint) lines.push(`hint: ${hint}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Whether a PCR policy was given and the document's measurements passed it. */
const isPinned = (r: VerificationResult) => r.checks["pcrs.policy"] === true;

/** Checks that only the verification time makes fail: a recorded document, checked now. */
const TIME_CHECKS = new Set(["chain.validity", "timestamp.max_age"]);

/**
 * For a document that fails only on time (its certificates' validity, its age): how to check it as of when it
 * was made, with --at.
 */
export function timeHint(r: VerificationResult): string | undefined {
  if (r.valid || !r.document || r.notChecked.length > 0 || r.failures.length === 0) return undefined;
  if (!r.failures.every((f) => TIME_CHECKS.has(f.check))) return undefined;
  const made = new Date(r.document.timestamp).toISOString();
  return `only the time fails: the document was made at ${made}, and its certificates lived about three hours around then. A recorded document is checked as of its own time: add --at ${made}`;
}

/** The verdict of the command: VALID, INVALID, or UNPINNED (valid, but no PCR policy pinned the code). */
export function verdictOf(r: VerificationResult, opts: { allowUnpinned?: boolean } = {}): string {
  if (!r.valid) return "INVALID";
  return isPinned(r) || opts.allowUnpinned ? "VALID" : "UNPINNED";
}

export function formatJson(r: VerificationResult, opts: { allowUnpinned?: boolean } = {}): string {
  const d = r.document;
  return `${JSON.stringify({
    verdict: verdictOf(r, opts),
    valid: r.valid,
    pinned: isPinned(r),
    hint: timeHint(r) ?? null,
    simulator: r.simulator,
    checks: r.checks,
    failures: r.failures,
    not_checked: r.notChecked,
    warnings: r.warnings,
    release: r.release ?? null,
    document: d && {
      module_id: d.moduleId,
      timestamp: d.timestamp,
      time: new Date(d.timestamp).toISOString(),
      digest: d.digest,
      tagged: d.cose.tagged,
      pcrs: Object.fromEntries([...d.pcrs].map(([i, v]) => [String(i), hexOf(v)])),
      certificate: hexOf(d.certificate),
      cabundle: d.cabundle.map(hexOf),
      public_key: hexOf(d.publicKey),
      user_data: hexOf(d.userData),
      nonce: hexOf(d.nonce),
    },
    receipt: r.receipt && {
      v: r.receipt.v,
      type: r.receipt.type,
      statechain: hexOf(r.receipt.statechain),
      epoch: r.receipt.epoch,
      erased: hexOf(r.receipt.erased),
      S2: hexOf(r.receipt.S2),
      prev: hexOf(r.receipt.prev),
      log: hexOf(r.receipt.log),
      time: r.receipt.time,
    },
  })}\n`;
}

/** Runs the command; returns the exit status. */
export function runCli(argv: string[], io: CliIo = processIo): number {
  // Known before the arguments parse: a usage error in a --json run is answered in JSON too.
  const json = argv.includes("--json");
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        format: { type: "string", default: "auto" },
        at: { type: "string" },
        pcrs: { type: "string" },
        "allow-debug": { type: "boolean", default: false },
        nonce: { type: "string" },
        receipt: { type: "string" },
        "prev-receipt": { type: "string" },
        "sim-root": { type: "string" },
        "max-age": { type: "string" },
        "allow-unpinned": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "V", default: false },
      },
    });
    if (values.help) {
      io.stdout(HELP);
      return 0;
    }
    if (values.version) {
      io.stdout(json ? `${JSON.stringify({ version: VERSION })}\n` : `verify-attestation ${VERSION}\n`);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError("give exactly one document file (or - for stdin)");
    const read = (p: string, what: string) => {
      try {
        return p === "-" ? io.readStdin() : io.readFile(p);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const why =
          code === "ENOENT"
            ? "ENOENT: no such file"
            : code === "EISDIR"
              ? "EISDIR: a directory, not a file"
              : code === "EACCES"
                ? "EACCES: permission denied"
                : (code ?? (e as Error).message);
        throw new ReadError(`cannot read ${what} ${p}: ${why}`);
      }
    };
    const name = positionals[0] === "-" ? "stdin" : positionals[0]!;
    const input = read(positionals[0]!, "document");
    let doc: Uint8Array;
    try {
      if (input.toString("latin1").trim() === "") throw new InvalidInputError(notADocument(input, name));
      doc = decodeInput(input, values.format!);
    } catch (e) {
      // An explicit --format that does not fit stays a usage error; in auto mode the input is what is wrong.
      if (!(e instanceof InvalidInputError) && (values.format !== "auto" || !(e instanceof UsageError)))
        throw e;
      const message = e instanceof InvalidInputError ? e.message : notADocument(input, name);
      if (values.json)
        io.stdout(
          `${JSON.stringify({ verdict: "INVALID", valid: false, failures: [{ check: "input", message }] })}\n`,
        );
      io.stderr(`verify-attestation: ${message}\n`);
      return 1;
    }
    const opts: VerifyOptions = { allowDebug: values["allow-debug"] };
    if (values.at !== undefined) opts.at = parseTime(values.at);
    if (values.pcrs !== undefined) {
      let policy: PcrPolicy;
      try {
        policy = loadPcrPolicy(read(values.pcrs, "PCR policy").toString("utf8"));
      } catch (e) {
        if (e instanceof UsageError) throw e;
        throw new UsageError((e as Error).message);
      }
      opts.pcrPolicy = policy;
    }
    if (values.nonce !== undefined) {
      if (!/^(?:[0-9a-fA-F]{2})+$/.test(values.nonce)) throw new UsageError("--nonce must be hex");
      opts.expectedNonce = new Uint8Array(Buffer.from(values.nonce, "hex"));
    }
    if (values.receipt !== undefined) opts.receipt = new Uint8Array(read(values.receipt, "receipt"));
    if (values["prev-receipt"] !== undefined) {
      if (values.receipt === undefined) throw new UsageError("--prev-receipt needs --receipt");
      opts.previousReceipt = new Uint8Array(read(values["prev-receipt"], "previous receipt"));
    }
    if (values["sim-root"] !== undefined) {
      const pem = read(values["sim-root"], "simulator root").toString("utf8");
      try {
        pemToDer(pem);
      } catch (e) {
        throw new UsageError(`--sim-root ${values["sim-root"]}: ${(e as Error).message}`);
      }
      opts.roots = { aws: true, simulatorRootPem: pem };
    }
    if (values["max-age"] !== undefined) {
      if (!/^\d+$/.test(values["max-age"])) throw new UsageError("--max-age must be whole seconds");
      opts.maxAgeMs = Number(values["max-age"]) * 1000;
    }
    const result = verifyAttestation(doc, opts);
    const allowUnpinned = values["allow-unpinned"];
    io.stdout(values.json ? formatJson(result, { allowUnpinned }) : formatText(result, { allowUnpinned }));
    return { VALID: 0, INVALID: 1, UNPINNED: 3 }[verdictOf(result, { allowUnpinned })] ?? 1;
  } catch (e) {
    const usage = e instanceof UsageError || (e as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS");
    const message = e instanceof Error ? e.message : String(e);
    if (json) {
      const code = e instanceof ReadError ? "READ" : usage ? "USAGE" : "ERROR";
      io.stdout(`${JSON.stringify({ verdict: "ERROR", valid: false, error: { code, message } })}\n`);
    }
    if (!usage) throw e;
    io.stderr(`verify-attestation: ${message}\n(see verify-attestation --help)\n`);
    return 2;
  }
}
