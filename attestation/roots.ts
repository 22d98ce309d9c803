// Trust anchors. The AWS Nitro Enclaves root G1 is embedded so the verifier works without any other file; its
// SHA-256 fingerprint is pinned separately and checked when this module loads, so an edit to either one is
// caught. Source: AWS, https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip (published by AWS
// for public use; the same file is ../shared/fixtures/nitro/aws_nitro_root_g1.pem, see the fixtures README).
import { createHash, X509Certificate } from "node:crypto";
import { ProtocolError } from "../protocol/errors.ts";

/** SHA-256 of the DER of the AWS Nitro Enclaves root G1 certificate (valid 2019-10-28 to 2049-10-28). */
export const AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

export const AWS_NITRO_ROOT_G1_PEM = `-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
`;

export const sha256Hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** DER of a PEM holding exactly one certificate; throws PEM_INVALID naming the problem. */
export function pemToDer(pem: string): Uint8Array {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length !== 1) {
    throw new ProtocolError(
      "PEM_INVALID",
      blocks.length === 0 ? "not a PEM certificate" : "the PEM holds more than one certificate",
    );
  }
  const body = blocks[0]!.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, "");
  const der = new Uint8Array(Buffer.from(body, "base64"));
  // Let OpenSSL confirm it is a certificate at all; the chain check parses it strictly later.
  try {
    new X509Certificate(der);
  } catch {
    throw new ProtocolError("PEM_INVALID", "the PEM block is not a readable certificate");
  }
  return der;
}

export function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

export const AWS_NITRO_ROOT_G1_DER = pemToDer(AWS_NITRO_ROOT_G1_PEM);
if (sha256Hex(AWS_NITRO_ROOT_G1_DER) !== AWS_NITRO_ROOT_G1_SHA256) {
  throw new Error("the embedded AWS Nitro root certificate does not match its pinned fingerprint");
}
