import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedSync } from "@scure/bip39";
import { KeyTree, keyPath, mnemonicToSeed, newMnemonic, OWNER_SHARE_LABEL } from "../../client/keys.ts";

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

test("the owner share o: m/8338'/coin'/account'/4'/slot'/keygen', HMAC-SHA512 reduced into [1, n-1], as documented", () => {
  const seed = mnemonicToSeed(ZERO_MNEMONIC);
  const tree = new KeyTree(seed, "regtest");
  // Recomputed here from the formula keys.ts documents (a wallet format: a change loses coins after a restore).
  const path = "m/8338'/1'/0'/4'/3'/1'";
  const k = HDKey.fromMasterSeed(seed).derive(path).privateKey!;
  const d = createHmac("sha512", OWNER_SHARE_LABEL).update(k).update(path, "utf8").digest();
  const n = secp256k1.Point.Fn.ORDER;
  const o = (BigInt(`0x${d.toString("hex")}`) % (n - 1n)) + 1n;
  assert.equal(Buffer.from(tree.ownerShare(3, 1)).toString("hex"), o.toString(16).padStart(64, "0"));
  // Pinned: the all-"abandon … art" mnemonic, regtest, slot 0, keygens 0 and 1; mainnet slot 0 keygen 0.
  const zero = new KeyTree(mnemonicToSeed(ZERO_MNEMONIC), "regtest");
  assert.equal(
    Buffer.from(zero.ownerShare(0, 0)).toString("hex"),
    "0672899e4f517d19f78770867ef75bfed783ce3acd2b420a51c088566b79c181",
  );
  assert.equal(
    Buffer.from(zero.ownerShare(0, 1)).toString("hex"),
    "f6f837a98cb1d2056aa0773fb8b56c96f0108d86681111369d8e5b9ae5f60177",
  );
  assert.equal(
    Buffer.from(new KeyTree(mnemonicToSeed(ZERO_MNEMONIC), "bitcoin").ownerShare(0, 0)).toString("hex"),
    "3b47e9676efd18b160f22aa67e09e45da24aca12321d0aa366085a57d258b4b4",
  );
  const shares = [
    tree.ownerShare(0, 0),
    tree.ownerShare(0, 1),
    tree.ownerShare(1, 0),
    tree.secret("proof", 0),
  ];
  assert.equal(
    new Set(shares.map((s) => Buffer.from(s).toString("hex"))).size,
    4,
    "distinct per slot and keygen",
  );
  assert.equal(
    code(() => tree.ownerShare(0, 2 ** 31)),
    "KEY_INDEX",
  );
  assert.equal(
    code(() => tree.ownerShare(-1, 0)),
    "KEY_INDEX",
  );
});
