// Receive addresses: what a receiver hands a sender (DESIGN.md 3.3 step 1). bech32m over a version byte (0),
// then the proof key C and the backup key B (33-byte compressed points each). The human-readable part names the
// network ("sc" mainnet, "tsc" testnet and signet, "rsc" regtest), so a coin cannot be sent across networks.
// 67 bytes make a 118-character string, above bech32's 90-character limit, which is lifted here: the checksum
// still detects any error in up to 4 characters (BIP173's guarantee holds for lengths up to 1023).
import { bech32m } from "@scure/base";
import { parsePoint } from "../protocol/encoding.ts";
import { fail, ProtocolError } from "../protocol/errors.ts";

export type WalletNetwork = "bitcoin" | "testnet" | "signet" | "regtest";

export const ADDRESS_VERSION = 0;
const PAYLOAD_BYTES = 1 + 33 + 33;

const HRP: Record<WalletNetwork, string> = { bitcoin: "sc", testnet: "tsc", signet: "tsc", regtest: "rsc" };

export interface ReceiveAddress {
  /** C, the proof key (33 bytes). */
  proofKey: Uint8Array;
  /** B, the backup key (33 bytes). */
  backupKey: Uint8Array;
}

export function addressHrp(network: WalletNetwork): string {
  return HRP[network];
}

export function encodeReceiveAddress(a: ReceiveAddress, network: WalletNetwork): string {
  parsePoint(a.proofKey, "proof key");
  parsePoint(a.backupKey, "backup key");
  const payload = new Uint8Array(PAYLOAD_BYTES);
  payload[0] = ADDRESS_VERSION;
  payload.set(a.proofKey, 1);
  payload.set(a.backupKey, 34);
  return bech32m.encode(HRP[network], bech32m.toWords(payload), false);
}

/** Decodes and checks an address for `network`: checksum, version, length, both points on the curve. */
export function decodeReceiveAddress(text: string, network: WalletNetwork): ReceiveAddress {
  const s = text.trim();
  let prefix: string;
  let bytes: Uint8Array;
  try {
    const d = bech32m.decode(s as `${string}1${string}`, false);
    prefix = d.prefix;
    bytes = bech32m.fromWords(d.words);
  } catch {
    return fail(
      "ADDRESS_CHECKSUM",
      "not a statechain address: the bech32m checksum or its characters are wrong (a typo?)",
    );
  }
  const known = Object.entries(HRP).filter(([, h]) => h === prefix);
  if (known.length === 0) fail("ADDRESS_PREFIX", `"${prefix}1…" is not a statechain address prefix`);
  if (prefix !== HRP[network]) {
    const names = known.map(([n]) => n).join(" or ");
    fail("ADDRESS_NETWORK", `this address is for ${names}, the wallet is on ${network}`);
  }
  if (bytes.length < 1) fail("ADDRESS_LENGTH", "the address is empty");
  if (bytes[0] !== ADDRESS_VERSION)
    fail("ADDRESS_VERSION", `address version ${bytes[0]} is not supported (this wallet knows version 0)`);
  if (bytes.length !== PAYLOAD_BYTES)
    fail("ADDRESS_LENGTH", `the address carries ${bytes.length} bytes, a version-0 address ${PAYLOAD_BYTES}`);
  const proofKey = bytes.slice(1, 34);
  const backupKey = bytes.slice(34);
  for (const [key, what] of [
    [proofKey, "proof key"],
    [backupKey, "backup key"],
  ] as const) {
    try {
      parsePoint(key, what);
    } catch {
      throw new ProtocolError(
        "ADDRESS_POINT",
        `the address's ${what} is not a point on secp256k1`,
        "invalid",
      );
    }
  }
  return { proofKey, backupKey };
}
