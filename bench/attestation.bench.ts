// Verification of a real Nitro document (nitrite_nondebug: 4 CA certificates + leaf, 1 KiB nonce, user_data and
// public_key): cold (fresh certificate cache: 4 certificate signatures + the COSE signature, all ECDSA P-384)
// and with the chain's certificates cached (only the COSE signature is verified). Beside each runs its floor:
// the same number of bare OpenSSL P-384 verifications. Also the simulator's cost to produce a document
// (encode + ES384 signature), which the enclave pays per transfer.
import { verify } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { decodeDocument, sigStructure } from "../attestation/document.ts";
import { SimulatorProvider } from "../attestation/providers/index.ts";
import { SimulatorCa } from "../attestation/sim-ca.ts";
import { CertCache, verifyAttestation } from "../attestation/verify.ts";
import { parseCertificate } from "../attestation/x509.ts";
import { bench } from "./harness.ts";

const fixture = path.resolve(import.meta.dirname, "../../shared/fixtures/nitro/nitrite_nondebug.b64");
const AT = (1725719856 + 600) * 1000;

export async function run(): Promise<void> {
  const doc = new Uint8Array(Buffer.from(readFileSync(fixture, "utf8").trim(), "base64"));
  const d = decodeDocument(doc);
  const certs = [...d.cabundle, d.certificate].map(parseCertificate);
  const leaf = certs[certs.length - 1]!;
  const cose = sigStructure(d.cose.protectedHeader, d.cose.payload);
  const floorCose = () =>
    verify("sha384", cose, { key: leaf.publicKey, dsaEncoding: "ieee-p1363" }, d.cose.signature);
  const floorChain = () => {
    for (let i = 1; i < certs.length; i++) {
      verify(
        "sha384",
        certs[i]!.tbs,
        { key: certs[i - 1]!.publicKey, dsaEncoding: "der" },
        certs[i]!.signature,
      );
    }
    floorCose();
  };
  const check = (ok: boolean) => {
    if (!ok) throw new Error("the benchmark document did not verify");
  };

  await bench("attestation.verify_cold", () => check(verifyAttestation(doc, { at: AT }).valid), {
    runs: 100,
    warmup: 5,
    peer: { name: "openssl_p384_verify_x5_floor", fn: floorChain },
  });
  const cache = new CertCache();
  await bench(
    "attestation.verify_cached",
    () => check(verifyAttestation(doc, { at: AT, certCache: cache }).valid),
    {
      runs: 200,
      warmup: 5,
      peer: { name: "openssl_p384_verify_x1_floor", fn: floorCose },
    },
  );

  const ca = SimulatorCa.open(mkdtempSync(path.join(tmpdir(), "bench-sim-ca-")));
  const pcr = new Uint8Array(48).fill(1);
  const provider = new SimulatorProvider({ ca, pcrs: { pcr0: pcr, pcr1: pcr, pcr2: pcr } });
  const userData = new Uint8Array(32).fill(2);
  const nonce = new Uint8Array(32).fill(3);
  await bench("attestation.sim_attest", () => provider.attest({ userData, nonce }), { runs: 100, warmup: 5 });
}
