// Per-coin Paillier keys of the wallet (client/paillier-keys.ts): their paths and seeds as documented, that two
// keygens of one wallet never share N or a prime, and the cache in a real wallet file (sealed at rest, bound to its
// row, refused under another passphrase, checked when loaded).
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { HDKey } from "@scure/bip32";
import { KeyTree } from "../../client/keys.ts";
import {
  deletePaillierKey,
  loadPaillierKey,
  PAILLIER_SEED_LABEL,
  paillierKeyPath,
  paillierSecretLabel,
  paillierSeed,
  parsePaillierKeyPath,
  savePaillierKey,
} from "../../client/paillier-keys.ts";
import { MIN_SCRYPT_N } from "../../client/secret-box.ts";
import { WalletStore } from "../../client/store.ts";
import { paillierFactors } from "../../protocol/ecdsa2p/paillier.ts";
import { verifyModulus } from "../../protocol/ecdsa2p/proofs/mod.ts";
import { paillierKeyFromSeed, seededBlumPrimes } from "../../protocol/ecdsa2p/seeded-paillier.ts";
import { bigIntToBytes } from "../../protocol/encoding.ts";
import { findSecrets, PASSPHRASE, tmpWalletFile } from "./wallet-helpers.ts";

const WALLET_SEED = Uint8Array.from({ length: 64 }, (_, i) => 0xa0 ^ i);
const tree = () => new KeyTree(WALLET_SEED, "regtest");
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

test("paths: m/8338'/<coin>'/<account>'/3'/<slot>'/<keygen>', all hardened, parsed back; malformed ones refused", () => {
  assert.equal(paillierKeyPath("regtest", 0, 5), "m/8338'/1'/0'/3'/5'/0'");
  assert.equal(paillierKeyPath("bitcoin", 2, 7, 1), "m/8338'/0'/2'/3'/7'/1'");
  assert.deepEqual(parsePaillierKeyPath("m/8338'/0'/2'/3'/7'/1'"), {
    network: "bitcoin",
    account: 2,
    slot: 7,
    keygen: 1,
  });
  for (const bad of [
    "m/8338'/1'/0'/0'/5'/0'", // the proof-key role
    "m/8338'/1'/0'/3'/5'", // no keygen level
    "m/8338'/1'/0'/3'/5/0'", // not hardened
    "m/44'/1'/0'/3'/5'/0'",
    "m/8338'/1'/0'/3'/2147483648'/0'",
  ])
    assert.throws(() => parsePaillierKeyPath(bad), code("KEY_PATH"), bad);
  assert.throws(() => paillierKeyPath("regtest", 0, -1), code("KEY_INDEX"));
  assert.throws(() => paillierKeyPath("regtest", 0, 1, 2 ** 31), code("KEY_INDEX"));
});

test("seed = HMAC-SHA512(label, BIP32 key at the path ‖ path), deterministic; other wallets' paths refused", () => {
  const path = paillierKeyPath("regtest", 0, 3, 0);
  const seed = paillierSeed(tree(), path);
  assert.equal(seed.length, 64);
  assert.deepEqual(paillierSeed(tree(), path), seed, "a restored wallet (same seed) derives the same");
  // Recomputed from the documentation with @scure/bip32 directly.
  const node = HDKey.fromMasterSeed(WALLET_SEED).derive(path).privateKey!;
  const expected = createHmac("sha512", PAILLIER_SEED_LABEL).update(node).update(path).digest();
  assert.deepEqual(Buffer.from(seed), expected);
  assert.notDeepEqual(paillierSeed(tree(), paillierKeyPath("regtest", 0, 3, 1)), seed);
  assert.notDeepEqual(paillierSeed(tree(), paillierKeyPath("regtest", 0, 4, 0)), seed);
  assert.notDeepEqual(
    paillierSeed(
      new KeyTree(
        WALLET_SEED.map((b) => b ^ 1),
        "regtest",
      ),
      path,
    ),
    seed,
  );
  assert.throws(() => paillierSeed(tree(), paillierKeyPath("bitcoin", 0, 3)), code("KEY_PATH"));
  assert.throws(() => paillierSeed(tree(), paillierKeyPath("regtest", 1, 3)), code("KEY_PATH"));
  assert.throws(() => tree().secretAt("m/8338'/1'/0'/3'/1/0'"), code("KEY_PATH"));
});

test("two coins of one wallet never share N, nor p nor q (slots 0 and 1, and a second keygen on slot 0)", () => {
  const keys = tree();
  const paths = [
    paillierKeyPath("regtest", 0, 0),
    paillierKeyPath("regtest", 0, 1),
    paillierKeyPath("regtest", 0, 0, 1),
  ];
  const primes = paths.map((p) => seededBlumPrimes(paillierSeed(keys, p)));
  const all = primes.flatMap(({ p, q }) => [p, q]);
  assert.equal(new Set(all).size, 6);
  assert.equal(new Set(primes.map(({ p, q }) => p * q)).size, 3);
});

async function storeWithKey() {
  const file = tmpWalletFile();
  const store = await WalletStore.create(file, PASSPHRASE, { scryptN: MIN_SCRYPT_N });
  const path = paillierKeyPath("regtest", 0, 2);
  const key = paillierKeyFromSeed(paillierSeed(tree(), path));
  await savePaillierKey(store, path, key);
  return { file, store, path, key };
}

test("cache round trip in a wallet file: p and q sealed at rest, the same key loaded back, then deleted", async () => {
  const { file, store, path, key } = await storeWithKey();
  const { p, q } = paillierFactors(key.secret);
  await store.close();
  const secrets = new Map([
    ["p", Buffer.from(bigIntToBytes(p))],
    ["q", Buffer.from(bigIntToBytes(q))],
    ["p (first 16 bytes)", Buffer.from(bigIntToBytes(p).subarray(0, 16))],
  ]);
  assert.deepEqual(findSecrets(file, secrets), [], "no form of p or q in the file or its WAL");
  const n = Buffer.from(bigIntToBytes(key.n));
  assert.deepEqual(
    findSecrets(file, new Map([["N", n]])),
    ["N"],
    "control: the public N is found in the clear",
  );

  const again = await WalletStore.open(file, PASSPHRASE);
  const loaded = (await loadPaillierKey(again, path))!;
  assert.equal(loaded.n, key.n);
  assert.deepEqual(paillierFactors(loaded.secret), paillierFactors(key.secret));
  assert.deepEqual(loaded.id, key.id);
  verifyModulus(loaded.n, loaded.modulusProof);
  assert.deepEqual(loaded.nonces, []);
  assert.equal((await loadPaillierKey(again, path, { nonces: 1 }))!.nonces.length, 1);
  assert.equal(await loadPaillierKey(again, paillierKeyPath("regtest", 0, 9)), undefined);
  assert.equal(await deletePaillierKey(again, path), true);
  assert.equal(
    await loadPaillierKey(again, path),
    undefined,
    "a deleted key is gone (rebuilt from the seed)",
  );
  assert.equal(await deletePaillierKey(again, path), false);
  await again.close();
});

test("a wrong passphrase loads nothing; a sealed secret copied to another path or wallet does not open", async () => {
  const { file, store, path } = await storeWithKey();
  const row = (await store.db.get<Record<string, Buffer | string | number>>(
    "SELECT * FROM paillier_keys WHERE path = ?",
    [path],
  ))!;
  const other = paillierKeyPath("regtest", 0, 3);
  await store.db.run(
    "INSERT INTO paillier_keys (path, n, key_id, secret_sealed, modulus_proof, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    [
      other,
      row.n as Buffer,
      row.key_id as Buffer,
      row.secret_sealed as Buffer,
      row.modulus_proof as Buffer,
      0,
    ],
  );
  await assert.rejects(loadPaillierKey(store, other), code("WRONG_PASSPHRASE"));
  await store.close();
  await assert.rejects(WalletStore.open(file, `${PASSPHRASE}!`), code("WRONG_PASSPHRASE"));

  const foreign = await WalletStore.create(tmpWalletFile(), "another passphrase", { scryptN: MIN_SCRYPT_N });
  await foreign.db.run(
    "INSERT INTO paillier_keys (path, n, key_id, secret_sealed, modulus_proof, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    [
      path,
      row.n as Buffer,
      row.key_id as Buffer,
      row.secret_sealed as Buffer,
      row.modulus_proof as Buffer,
      0,
    ],
  );
  await assert.rejects(loadPaillierKey(foreign, path), code("WRONG_PASSPHRASE"));
  await foreign.close();
});

test("a row whose N does not match its sealed primes, or whose Π^mod names another id, is refused", async () => {
  const { store, path, key } = await storeWithKey();
  await store.db.run("UPDATE paillier_keys SET n = ? WHERE path = ?", [
    Buffer.from(bigIntToBytes(key.n + 2n)),
    path,
  ]);
  await assert.rejects(loadPaillierKey(store, path), code("WALLET_CORRUPT"));
  await savePaillierKey(store, path, key);
  await store.db.run("UPDATE paillier_keys SET key_id = ? WHERE path = ?", [Buffer.alloc(16, 7), path]);
  await assert.rejects(loadPaillierKey(store, path), code("WALLET_CORRUPT"));
  assert.equal(paillierSecretLabel(path), `paillier/${path}/pq`);
  await store.close();
});
