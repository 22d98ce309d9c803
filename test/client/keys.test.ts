import assert from "node:assert/strict";
import { test } from "node:test";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import { KeyTree, keyPath, mnemonicToSeed, newMnemonic } from "../../client/keys.ts";

const ZERO_MNEMONIC = `${"abandon ".repeat(23)}art`;

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

test("a new mnemonic is 24 words from 256 bits of the injected randomness (BIP39 vector for zero entropy)", () => {
  assert.equal(
    newMnemonic((n) => new Uint8Array(n)),
    ZERO_MNEMONIC,
  );
  const m = newMnemonic((n) => Uint8Array.from({ length: n }, (_, i) => i * 7));
  assert.equal(m.split(" ").length, 24);
  assert.deepEqual(mnemonicToSeed(m), mnemonicToSeedSync(m));
});

test("mnemonic input is normalised; wrong words, counts and checksums are refused by name", () => {
  const seed = mnemonicToSeed(ZERO_MNEMONIC);
  assert.deepEqual(mnemonicToSeed(`  ${ZERO_MNEMONIC.toUpperCase().replace(/ /g, "\n  ")} `), seed);
  assert.equal(
    code(() => mnemonicToSeed(`${"abandon ".repeat(23)}abandon`)),
    "MNEMONIC_INVALID",
  );
  assert.equal(
    code(() => mnemonicToSeed(`${"abandon ".repeat(23)}bitcoinz`)),
    "MNEMONIC_INVALID",
  );
  assert.equal(
    code(() => mnemonicToSeed("abandon art")),
    "MNEMONIC_INVALID",
  );
});

test("keys live on hardened paths m/8338'/coin'/account'/role'/index'", () => {
  assert.equal(keyPath("bitcoin", 0, "proof", 0), "m/8338'/0'/0'/0'/0'");
  assert.equal(keyPath("regtest", 2, "backup", 7), "m/8338'/1'/2'/1'/7'");
  assert.equal(keyPath("testnet", 0, "funding", 3), "m/8338'/1'/0'/2'/3'");
  assert.equal(
    code(() => keyPath("regtest", 0, "proof", 2 ** 31)),
    "KEY_INDEX",
  );
  const seed = mnemonicToSeed(ZERO_MNEMONIC);
  const tree = new KeyTree(seed, "regtest");
  const root = HDKey.fromMasterSeed(seed);
  assert.deepEqual(tree.secret("backup", 7), root.derive("m/8338'/1'/0'/1'/7'").privateKey);
  const all = [
    tree.secret("proof", 0),
    tree.secret("backup", 0),
    tree.secret("funding", 0),
    tree.secret("proof", 1),
    new KeyTree(seed, "bitcoin").secret("proof", 0),
    new KeyTree(seed, "regtest", 1).secret("proof", 0),
  ].map((k) => Buffer.from(k).toString("hex"));
  assert.equal(new Set(all).size, all.length, "roles, indexes, networks and accounts give distinct keys");
  assert.deepEqual(
    new KeyTree(seed, "regtest").publicKey("proof", 3),
    tree.publicKey("proof", 3),
    "deterministic",
  );
});
