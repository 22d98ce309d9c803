// The wallet's key tree. A BIP39 mnemonic (English, 24 words) gives the seed; BIP32 derives every key on
// hardened paths m/8338'/<coin>'/<account>'/<role>'/<index>' (coin 0 on mainnet, 1 elsewhere). Roles: proof keys
// C (0), backup keys B (1), on-chain funding and change keys (2), and the seeds of per-coin Paillier keys (3, one
// level deeper: m/8338'/<coin>'/<account>'/3'/<slot>'/<keygen>', see paillier-keys.ts). Each coin the wallet
// deposits or receives uses a fresh proof and backup index. The owner's two-party share o is random, never derived: a seed alone cannot
// take a coin from the SE, and a restored wallet recovers on-chain funds and unclaimed transfers only.

import { secp256k1 } from "@noble/curves/secp256k1.js";
import { HDKey } from "@scure/bip32";
import { entropyToMnemonic, mnemonicToSeedSync, validateMnemonic } from "@scure/bip39";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import { fail } from "../protocol/errors.ts";
import type { Rng } from "../protocol/rng.ts";
import type { WalletNetwork } from "./address.ts";

/** The purpose level of every path (a number of our own: not a BIP43 purpose in use elsewhere). */
export const KEY_PURPOSE = 8338;

export const KeyRole = { proof: 0, backup: 1, funding: 2 } as const;
export type KeyRole = keyof typeof KeyRole;

const HARDENED_MAX = 0x7fffffff;

export function coinType(network: WalletNetwork): number {
  return network === "bitcoin" ? 0 : 1;
}

export function keyPath(network: WalletNetwork, account: number, role: KeyRole, index: number): string {
  for (const [v, what] of [
    [account, "account"],
    [index, "key index"],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > HARDENED_MAX) fail("KEY_INDEX", `${what} ${v} is out of range`);
  }
  return `m/${KEY_PURPOSE}'/${coinType(network)}'/${account}'/${KeyRole[role]}'/${index}'`;
}

/** A fresh 24-word mnemonic from 256 bits of the injected randomness. */
export function newMnemonic(rng: Rng): string {
  return entropyToMnemonic(rng(32), wordlist);
}

/** Lower case, single spaces: the form BIP39 checks and the seed is computed from. */
export function normalizeMnemonic(text: string): string {
  return text.trim().toLowerCase().split(/\s+/).join(" ");
}

/** The 64-byte BIP39 seed (no BIP39 passphrase). Refuses words outside the list and a wrong checksum. */
export function mnemonicToSeed(text: string): Uint8Array {
  const m = normalizeMnemonic(text);
  const words = m.split(" ");
  if (![12, 15, 18, 21, 24].includes(words.length))
    fail("MNEMONIC_INVALID", `a mnemonic has 12 to 24 words, this one ${words.length}`);
  const unknown = words.find((w) => !wordlist.includes(w));
  if (unknown !== undefined) fail("MNEMONIC_INVALID", `"${unknown}" is not a BIP39 English word`);
  if (!validateMnemonic(m, wordlist))
    fail("MNEMONIC_INVALID", "the mnemonic's checksum is wrong (a word is misspelt or out of order)");
  return mnemonicToSeedSync(m);
}

/** The key tree of one wallet: derives secrets on demand from the seed it holds. */
export class KeyTree {
  private readonly root: HDKey;

  constructor(
    seed: Uint8Array,
    readonly network: WalletNetwork,
    readonly account = 0,
  ) {
    this.root = HDKey.fromMasterSeed(seed);
  }

  secret(role: KeyRole, index: number): Uint8Array {
    const k = this.root.derive(keyPath(this.network, this.account, role, index));
    if (!k.privateKey) return fail("KEY_DERIVATION", "derivation gave no private key");
    return k.privateKey;
  }

  /**
   * The private key at `path`, a hardened path under this tree's m/8338'/<coin>'/<account>' (the Paillier seeds
   * of paillier-keys.ts take one level more than keyPath's).
   */
  secretAt(path: string): Uint8Array {
    const prefix = `m/${KEY_PURPOSE}'/${coinType(this.network)}'/${this.account}'/`;
    if (!path.startsWith(prefix) || !/^(\d+'\/)*\d+'$/.test(path.slice(prefix.length)))
      fail("KEY_PATH", `${path} is not a hardened path of this wallet (${prefix}…)`);
    const k = this.root.derive(path);
    if (!k.privateKey) return fail("KEY_DERIVATION", "derivation gave no private key");
    return k.privateKey;
  }

  publicKey(role: KeyRole, index: number): Uint8Array {
    return secp256k1.getPublicKey(this.secret(role, index), true);
  }

  /** Forgets the root key (the HDKey keeps its own copy of the seed-derived secrets). */
  wipe(): void {
    this.root.wipePrivateData();
  }
}
