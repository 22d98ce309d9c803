// The wallet's key tree (a wallet format: changing it loses coins after a restore). A BIP39 mnemonic (English, 24
// words) gives the seed; BIP32 derives every key on hardened paths (coin 0 on mainnet, 1 elsewhere):
//
//   m/8338'/<coin>'/<account>'/0'/<slot>'            proof key C of the coin on key slot <slot>
//   m/8338'/<coin>'/<account>'/1'/<slot>'            backup key B of that coin
//   m/8338'/<coin>'/<account>'/2'/<index>'           on-chain funding and change keys
//   m/8338'/<coin>'/<account>'/3'/<slot>'/<keygen>'  seed of the per-coin Paillier key (paillier-keys.ts)
//   m/8338'/<coin>'/<account>'/4'/<slot>'/<keygen>'  the owner's two-party share o (ownerShare below)
//
// Each coin the wallet deposits or receives takes a fresh slot; <keygen> counts the keygens on one slot (0 for
// the first; a second coin sent to the same receive address gets 1). With o and the Paillier key derived, the
// mnemonic plus what the SE serves (the statechain, the backups, and S, N, c_key: the RecoverCoins RPC) rebuilds
// every coin (issue #22). The seed alone takes nothing: the SE's share s never leaves the enclave.

import { createHmac } from "node:crypto";
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

/** The role level of owner shares (after the Paillier seeds' 3, paillier-keys.ts). */
export const SHARE_ROLE = 4;
export const OWNER_SHARE_LABEL = "statechain-wallet/v1/owner-share";
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

  /**
   * The owner's share o of keygen `keygen` on slot `slot`: k = the BIP32 key at
   * m/8338'/<coin>'/<account>'/4'/<slot>'/<keygen>', o = (HMAC-SHA512(key = OWNER_SHARE_LABEL, k ‖ UTF-8(path))
   * mod (n − 1)) + 1, 32 bytes big-endian. 512 bits reduced mod n leave a bias below 2⁻²⁵⁶.
   */
  ownerShare(slot: number, keygen: number): Uint8Array {
    for (const [v, what] of [
      [slot, "key slot"],
      [keygen, "keygen number"],
    ] as const)
      if (!Number.isInteger(v) || v < 0 || v > HARDENED_MAX)
        fail("KEY_INDEX", `${what} ${v} is out of range`);
    const path = `m/${KEY_PURPOSE}'/${coinType(this.network)}'/${this.account}'/${SHARE_ROLE}'/${slot}'/${keygen}'`;
    const k = this.secretAt(path);
    const digest = createHmac("sha512", OWNER_SHARE_LABEL).update(k).update(path, "utf8").digest();
    k.fill(0);
    const n = secp256k1.Point.Fn.ORDER;
    const o = (BigInt(`0x${digest.toString("hex")}`) % (n - 1n)) + 1n;
    digest.fill(0);
    return secp256k1.Point.Fn.toBytes(o);
  }

  publicKey(role: KeyRole, index: number): Uint8Array {
    return secp256k1.getPublicKey(this.secret(role, index), true);
  }

  /** Forgets the root key (the HDKey keeps its own copy of the seed-derived secrets). */
  wipe(): void {
    this.root.wipePrivateData();
  }
}
