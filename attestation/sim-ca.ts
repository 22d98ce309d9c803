// The simulator's certificate authority: root → intermediate → leaf, all P-384, shaped like Nitro's chain.
// Root and intermediate persist in a directory the enclave passes (its data dir) so the root an operator has
// published stays the same across restarts; their private keys are files of mode 0600 (acceptable for the
// simulator only: it gives no hardware guarantee, and verifiers say SIMULATOR). The leaf lives in memory,
// like Nitro's for about three hours, and is re-issued at start, when little of its life is left, or for a new
// module id.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ProtocolError } from "../protocol/errors.ts";
import { type Rng, systemRng } from "../protocol/rng.ts";
import { derToPem, pemToDer } from "./roots.ts";
import {
  encodeName,
  issueCertificate,
  keyIdentifier,
  type ParsedCertificate,
  parseCertificate,
  signatureVerifies,
} from "./x509.ts";

export const SIM_FILES = {
  rootCert: "sim-ca-root.pem",
  rootKey: "sim-ca-root.key",
  intermediateCert: "sim-ca-intermediate.pem",
  intermediateKey: "sim-ca-intermediate.key",
} as const;

const HOUR = 3600_000;
const DAY = 24 * HOUR;
export const ROOT_LIFETIME_MS = 30 * 365 * DAY;
export const INTERMEDIATE_LIFETIME_MS = 30 * DAY;
/** Nitro's leaf certificates live about three hours. */
export const LEAF_LIFETIME_MS = 3 * HOUR;
/** A leaf with less than this left is replaced, so a document stays verifiable for at least this long. */
export const LEAF_RENEW_MS = HOUR;
/** The intermediate is replaced when it has less than this left. */
const INTERMEDIATE_RENEW_MS = DAY;
/** Certificates start a little in the past to tolerate clock skew between enclave and verifier. */
const BACKDATE_MS = 60_000;

const ORG = { C: "US", O: "Statechain Simulator", OU: "SIM" };
const ROOT_NAME = encodeName({ ...ORG, CN: "simulator.nitro-enclaves" });

export class SimulatorCaError extends ProtocolError {
  override name = "SimulatorCaError";
  constructor(message: string) {
    super("SIM_CA_INVALID", message, "internal");
  }
}

export interface LeafCredentials {
  certificate: Uint8Array;
  key: KeyObject;
  /** root, intermediate: the document's cabundle. */
  cabundle: Uint8Array[];
  notBefore: number;
  notAfter: number;
}

interface Pair {
  der: Uint8Array;
  cert: ParsedCertificate;
  key: KeyObject;
}

function newKey(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync("ec", { namedCurve: "secp384r1" });
}

function serial(rng: Rng): Uint8Array {
  const s = rng(16);
  s[0] = (s[0]! & 0x7f) | 0x01;
  return s;
}

/** Writes `data` to `file` atomically with `mode`. */
function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

function loadPair(dir: string, certFile: string, keyFile: string): Pair | undefined {
  const cf = path.join(dir, certFile);
  const kf = path.join(dir, keyFile);
  if (!existsSync(cf) && !existsSync(kf)) return undefined;
  if (!existsSync(cf) || !existsSync(kf)) {
    throw new SimulatorCaError(`${certFile} and ${keyFile} must both exist in ${dir} (one is missing)`);
  }
  const mode = statSync(kf).mode & 0o777;
  if (mode & 0o077) {
    throw new SimulatorCaError(`${kf} is readable by others (mode ${mode.toString(8)}); chmod 600 it`);
  }
  let der: Uint8Array;
  let cert: ParsedCertificate;
  let key: KeyObject;
  try {
    der = pemToDer(readFileSync(cf, "utf8"));
    cert = parseCertificate(der);
    key = createPrivateKey(readFileSync(kf, "utf8"));
  } catch (e) {
    throw new SimulatorCaError(`cannot read ${certFile} / ${keyFile}: ${(e as Error).message}`);
  }
  const pub = createPublicKey(key).export({ type: "spki", format: "der" });
  if (Buffer.compare(pub, cert.publicKey.export({ type: "spki", format: "der" })) !== 0) {
    throw new SimulatorCaError(`${keyFile} is not the key of ${certFile}`);
  }
  return { der, cert, key };
}

function issueIntermediate(dir: string, root: Pair, t: number, rng: Rng): Pair {
  const k = newKey();
  const id = Buffer.from(rng(8)).toString("hex");
  const der = issueCertificate({
    serial: serial(rng),
    subject: encodeName({ ...ORG, CN: `${id}.simulator.nitro-enclaves` }),
    issuer: root.cert.subject,
    publicKey: k.publicKey,
    signingKey: root.key,
    notBefore: t - BACKDATE_MS,
    notAfter: Math.min(t + INTERMEDIATE_LIFETIME_MS, root.cert.notAfter),
    ca: true,
    pathLen: 0,
    keyUsage: ["digitalSignature", "keyCertSign", "cRLSign"],
    keyUsageCritical: true,
    authorityKeyId: keyIdentifier(root.cert.publicKey),
    subjectKeyId: true,
  });
  writeAtomic(
    path.join(dir, SIM_FILES.intermediateKey),
    k.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    0o600,
  );
  writeAtomic(path.join(dir, SIM_FILES.intermediateCert), derToPem(der), 0o644);
  return { der, cert: parseCertificate(der), key: k.privateKey };
}

export interface SimulatorCaOptions {
  /** Clock (ms); default Date.now. */
  now?: () => number;
  rng?: Rng;
}

export class SimulatorCa {
  private leaf: (LeafCredentials & { moduleId: string }) | undefined;

  private constructor(
    private readonly dir: string,
    private readonly root: Pair,
    private intermediate: Pair,
    private readonly now: () => number,
    private readonly rng: Rng,
  ) {}

  /** Loads the CA kept in `dir`, creating what is missing. Refuses damaged files rather than replacing a root
   * that verifiers may already trust. */
  static open(dir: string, opts: SimulatorCaOptions = {}): SimulatorCa {
    const now = opts.now ?? Date.now;
    const rng = opts.rng ?? systemRng;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    let root = loadPair(dir, SIM_FILES.rootCert, SIM_FILES.rootKey);
    let intermediate = root
      ? loadPair(dir, SIM_FILES.intermediateCert, SIM_FILES.intermediateKey)
      : undefined;
    if (!root) {
      const k = newKey();
      const t = now();
      const der = issueCertificate({
        serial: serial(rng),
        subject: ROOT_NAME,
        issuer: ROOT_NAME,
        publicKey: k.publicKey,
        signingKey: k.privateKey,
        notBefore: t - BACKDATE_MS,
        notAfter: t + ROOT_LIFETIME_MS,
        ca: true,
        keyUsage: ["digitalSignature", "keyCertSign", "cRLSign"],
        keyUsageCritical: true,
        subjectKeyId: true,
      });
      writeAtomic(
        path.join(dir, SIM_FILES.rootKey),
        k.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
        0o600,
      );
      writeAtomic(path.join(dir, SIM_FILES.rootCert), derToPem(der), 0o644);
      root = { der, cert: parseCertificate(der), key: k.privateKey };
    }
    if (now() > root.cert.notAfter) throw new SimulatorCaError("the simulator root certificate has expired");
    if (intermediate && !signatureVerifies(intermediate.cert, root.cert.publicKey)) {
      throw new SimulatorCaError(`${SIM_FILES.intermediateCert} was not issued by ${SIM_FILES.rootCert}`);
    }
    if (!intermediate || intermediate.cert.notAfter - now() < INTERMEDIATE_RENEW_MS) {
      intermediate = issueIntermediate(dir, root, now(), rng);
    }
    return new SimulatorCa(dir, root, intermediate, now, rng);
  }

  /** The root certificate to publish; owners pass it to verify-attestation with --sim-root. */
  get rootDer(): Uint8Array {
    return this.root.der;
  }

  rootPem(): string {
    return derToPem(this.root.der);
  }

  private renewIntermediate(t: number): void {
    this.intermediate = issueIntermediate(this.dir, this.root, t, this.rng);
    this.leaf = undefined;
  }

  /** The leaf certificate and key that sign documents for `moduleId` at time `t` (default the CA's clock),
   * issued afresh when needed. */
  leafFor(moduleId: string, t: number = this.now()): LeafCredentials {
    if (this.intermediate.cert.notAfter - t < INTERMEDIATE_RENEW_MS) this.renewIntermediate(t);
    const l = this.leaf;
    if (l && l.moduleId === moduleId && l.notBefore <= t && l.notAfter - t >= LEAF_RENEW_MS) return l;
    const k = newKey();
    const notAfter = Math.min(t + LEAF_LIFETIME_MS, this.intermediate.cert.notAfter);
    const certificate = issueCertificate({
      serial: serial(this.rng),
      subject: encodeName({ ...ORG, ST: "Simulator", L: "Localhost", CN: `${moduleId}.simulator` }),
      issuer: this.intermediate.cert.subject,
      publicKey: k.publicKey,
      signingKey: this.intermediate.key,
      notBefore: t - BACKDATE_MS,
      notAfter,
      ca: false,
      keyUsage: ["digitalSignature", "nonRepudiation"],
      keyUsageCritical: false,
    });
    this.leaf = {
      moduleId,
      certificate,
      key: k.privateKey,
      cabundle: [this.root.der, this.intermediate.der],
      notBefore: Math.floor((t - BACKDATE_MS) / 1000) * 1000,
      notAfter: Math.floor(notAfter / 1000) * 1000,
    };
    return this.leaf;
  }
}
