// Wallets for tests: a temporary file and the cheapest allowed scrypt cost.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { unpackFields } from "../../client/codec.ts";
import { KeyTree, mnemonicToSeed } from "../../client/keys.ts";
import { paillierSecretLabel } from "../../client/paillier-keys.ts";
import { MIN_SCRYPT_N } from "../../client/secret-box.ts";
import { shareLabel, WalletStore } from "../../client/store.ts";
import { Wallet, type WalletServices } from "../../client/wallet.ts";
import type { Harness } from "../helpers/owners.ts";

export const PASSPHRASE = "correct horse battery staple";

export function tmpWalletFile(name = "wallet"): string {
  return path.join(mkdtempSync(path.join(tmpdir(), "wallet-")), `${name}.sqlite`);
}

export function servicesOf(h: Harness): WalletServices {
  return {
    se: h.ctx.se,
    chain: h.chain,
    trust: h.ctx.trust,
    feeRateSatVb: 2,
    mainstayKey: h.ctx.mainstayKey,
    mainstaySlot: h.ctx.mainstaySlot,
    allowUnpublished: h.ctx.allowUnpublished,
  };
}

export async function testWallet(h?: Harness, opts: { file?: string; mnemonic?: string } = {}) {
  const file = opts.file ?? tmpWalletFile();
  const { wallet, mnemonic } = await Wallet.create({
    file,
    passphrase: PASSPHRASE,
    network: "regtest",
    mnemonic: opts.mnemonic,
    scryptN: MIN_SCRYPT_N,
  });
  if (h) wallet.connect(servicesOf(h));
  return { wallet, mnemonic, file };
}

/** Every secret a wallet file must never hold in the clear, read back through the passphrase. */
export async function walletSecrets(file: string, passphrase = PASSPHRASE): Promise<Map<string, Buffer>> {
  const store = await WalletStore.open(file, passphrase);
  const secrets = new Map<string, Buffer>();
  try {
    const mnemonic = (await store.getSealed("mnemonic"))!;
    secrets.set("mnemonic", mnemonic);
    const seed = mnemonicToSeed(mnemonic.toString("utf8"));
    secrets.set("seed", Buffer.from(seed));
    const keys = new KeyTree(seed, "regtest");
    const slots = await store.db.all<{ idx: number }>("SELECT idx FROM key_slots");
    for (const { idx } of slots) {
      secrets.set(`proof secret ${idx}`, Buffer.from(keys.secret("proof", idx)));
      secrets.set(`backup secret ${idx}`, Buffer.from(keys.secret("backup", idx)));
    }
    const funding = await store.db.all<{ idx: number }>("SELECT idx FROM funding_keys");
    for (const { idx } of funding)
      secrets.set(`funding secret ${idx}`, Buffer.from(keys.secret("funding", idx)));
    const coins = await store.db.all<{ statechain_id: Buffer; key_idx: number; share_sealed: Buffer }>(
      "SELECT statechain_id, key_idx, share_sealed FROM coins",
    );
    for (const c of coins) {
      const name = c.statechain_id.toString("hex").slice(0, 8);
      const sealed = store.open(c.share_sealed, shareLabel(c.statechain_id.toString("hex"), c.key_idx));
      // A coin kept exit-only from a transfer cut before any key update has no two-party key: nothing sealed.
      if (sealed.length === 0) continue;
      secrets.set(`key secret of coin ${name}`, sealed);
      // An exit-only coin kept from a cut receive holds the same layout: o, then the Paillier primes p, q.
      const [o, p, q] = unpackFields(sealed, 3, "stored key secret");
      secrets.set(`share of coin ${name}`, o!);
      secrets.set(`Paillier p of coin ${name}`, p!);
      secrets.set(`Paillier q of coin ${name}`, q!);
    }
    // Paillier keys made ahead for coins to come (sealed rows of paillier_keys): their primes.
    const cached = await store.db.all<{ path: string; secret_sealed: Buffer }>(
      "SELECT path, secret_sealed FROM paillier_keys",
    );
    for (const c of cached) {
      const plain = store.open(c.secret_sealed, paillierSecretLabel(c.path));
      const lp = plain.readUInt32BE(0);
      secrets.set(`cached Paillier p ${c.path}`, Buffer.from(plain.subarray(4, 4 + lp)));
      secrets.set(`cached Paillier q ${c.path}`, Buffer.from(plain.subarray(8 + lp)));
    }
  } finally {
    await store.close();
  }
  return secrets;
}

/** The names of the secrets found, raw or as hex, in the wallet file and its WAL. */
export function findSecrets(file: string, secrets: Map<string, Buffer>): string[] {
  const blobs: Buffer[] = [];
  for (const f of [file, `${file}-wal`]) {
    try {
      blobs.push(readFileSync(f));
    } catch {
      // no WAL right now
    }
  }
  const found: string[] = [];
  for (const [name, s] of secrets) {
    const forms = [s, Buffer.from(s.toString("hex")), Buffer.from(s.toString("hex").toUpperCase())];
    if (blobs.some((b) => forms.some((f) => b.includes(f)))) found.push(name);
  }
  return found;
}
