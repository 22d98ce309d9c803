// Simulated NSM: documents in Nitro's exact format, signed by the simulator CA's leaf. PCRs come from the
// caller (the enclave measures its own code in enclave/measure.ts); PCR 0..15 are present, unused ones zero,
// as on Nitro.
import { type Rng, systemRng } from "../../protocol/rng.ts";
import { encodeDocument } from "../document.ts";
import type { SimulatorCa } from "../sim-ca.ts";
import {
  AttestationError,
  type AttestationProvider,
  type AttestationRequest,
  checkRequest,
} from "./provider.ts";

export interface SimulatedPcrs {
  pcr0: Uint8Array;
  pcr1: Uint8Array;
  pcr2: Uint8Array;
  /** Any other registers to report (index 3..15), e.g. PCR8 for a signed image. */
  others?: ReadonlyMap<number, Uint8Array>;
}

export interface SimulatorProviderOptions {
  ca: SimulatorCa;
  pcrs: SimulatedPcrs;
  /** Default: "i-sim<16 hex>-enc<16 hex>", drawn once from rng. */
  moduleId?: string;
  now?: () => number;
  rng?: Rng;
  /** Emit the COSE_Sign1 with CBOR tag 18 (Nitro's NSM sends it untagged). */
  tagged?: boolean;
}

const PCR_SIZE = 48;
const PCR_COUNT = 16;

export function simulatorModuleId(rng: Rng = systemRng): string {
  const hex = (n: number) => Buffer.from(rng(n)).toString("hex");
  return `i-sim${hex(8)}-enc${hex(8)}`;
}

export class SimulatorProvider implements AttestationProvider {
  readonly mode = "simulator" as const;
  readonly moduleId: string;
  private readonly pcrs: Map<number, Uint8Array>;
  private readonly now: () => number;

  constructor(private readonly opts: SimulatorProviderOptions) {
    this.moduleId = opts.moduleId ?? simulatorModuleId(opts.rng ?? systemRng);
    this.now = opts.now ?? Date.now;
    this.pcrs = new Map();
    for (let i = 0; i < PCR_COUNT; i++) this.pcrs.set(i, new Uint8Array(PCR_SIZE));
    const given: [number, Uint8Array][] = [
      [0, opts.pcrs.pcr0],
      [1, opts.pcrs.pcr1],
      [2, opts.pcrs.pcr2],
      ...(opts.pcrs.others ?? new Map()),
    ];
    for (const [i, v] of given) {
      if (!Number.isInteger(i) || i < 0 || i >= PCR_COUNT || v.length !== PCR_SIZE) {
        throw new AttestationError(
          "SIM_PCR_INVALID",
          `PCR${i} must be ${PCR_SIZE} bytes, index 0..15`,
          "internal",
        );
      }
      this.pcrs.set(i, new Uint8Array(v));
    }
  }

  async attest(req: AttestationRequest): Promise<Uint8Array> {
    checkRequest(req);
    const timestamp = this.now();
    const leaf = this.opts.ca.leafFor(this.moduleId, timestamp);
    return encodeDocument(
      {
        moduleId: this.moduleId,
        digest: "SHA384",
        timestamp,
        pcrs: this.pcrs,
        certificate: leaf.certificate,
        cabundle: leaf.cabundle,
        publicKey: req.publicKey ?? null,
        userData: req.userData ?? null,
        nonce: req.nonce ?? null,
      },
      leaf.key,
      { tagged: this.opts.tagged ?? false },
    );
  }
}
