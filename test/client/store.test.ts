// The wallet file on its own (no SE): what a wrong passphrase does (nothing), what restore recovers, and a
// control that the secret scanner used by the integration tests does find a secret written in the clear.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { test } from "node:test";
import { WalletStore } from "../../client/store.ts";
import { RESTORE_GAP, Wallet } from "../../client/wallet.ts";
import { findSecrets, PASSPHRASE, testWallet, tmpWalletFile, walletSecrets } from "./wallet-helpers.ts";

const digest = (f: string) =>
  [f, `${f}-wal`]
    .map((x) => (existsSync(x) ? createHash("sha256").update(readFileSync(x)).digest("hex") : "-"))
    .join();

test("a wrong passphrase opens nothing and changes nothing; the right one opens the wallet", async () => {
  const { wallet, file } = await testWallet();
  const address = (await wallet.receiveAddress()).address;
  await wallet.close();
  assert.equal(statSync(file).mode & 0o777, 0o600, "the wallet file is private to its owner");
  const before = digest(file);
  for (const wrong of ["correct horse battery stapl", "Correct horse battery staple", " "])
    await assert.rejects(Wallet.open(file, wrong), (e: Error & { code?: string }) => {
      assert.equal(e.code, "WRONG_PASSPHRASE");
      assert.match(e.message, /passphrase does not open this wallet/);
      return true;
    });
  await assert.rejects(Wallet.open(file, ""), /empty/);
  assert.equal(digest(file), before, "no byte of the file (or its WAL) changed");
  const again = await Wallet.open(file, PASSPHRASE);
  assert.equal((await again.receiveAddress()).address, address);
  await again.close();
});

test("missing, existing and foreign files are named as such", async () => {
  const file = tmpWalletFile();
  await assert.rejects(
    Wallet.open(file, PASSPHRASE),
    (e: Error & { code?: string }) => e.code === "NO_WALLET",
  );
  assert.ok(!existsSync(file), "opening does not create a file");
  const { wallet } = await testWallet(undefined, { file });
  await wallet.close();
  await assert.rejects(
    testWallet(undefined, { file }),
    (e: Error & { code?: string }) => e.code === "WALLET_EXISTS",
  );
});

test("restore from the mnemonic gives the same keys and scans the first addresses", async () => {
  const { wallet, mnemonic } = await testWallet();
  const first = await wallet.receiveAddress();
  const onchain = await wallet.fundingAddress();
  await wallet.close();
  const { wallet: restored, file } = await testWallet(undefined, { mnemonic: mnemonic.toUpperCase() });
  assert.deepEqual(await restored.receiveAddress(), first);
  assert.equal(await restored.fundingAddress(), onchain);
  assert.equal(await restored.mnemonic(), mnemonic);
  await restored.close();
  const store = await WalletStore.open(file, PASSPHRASE);
  const slots = await store.db.all<{ idx: number }>("SELECT idx FROM key_slots WHERE purpose = 'receive'");
  assert.equal(slots.length, RESTORE_GAP);
  await store.close();
  await assert.rejects(testWallet(undefined, { mnemonic: "abandon art" }), /12 to 24 words/);
});

test("control: the secret scan finds a secret written in the clear", async () => {
  const { wallet, file } = await testWallet();
  await wallet.close();
  const secrets = await walletSecrets(file);
  assert.deepEqual(findSecrets(file, secrets), []);
  const store = await WalletStore.open(file, PASSPHRASE);
  await store.setConfig(
    "leak",
    secrets.get("proof secret 0")?.toString("hex") ?? secrets.get("seed")!.toString("hex"),
  );
  await store.db.run("INSERT INTO meta (key, value) VALUES ('leak2', ?)", [secrets.get("mnemonic")!]);
  assert.ok(findSecrets(file, secrets).includes("mnemonic"), "raw bytes in the WAL or file");
  await store.close();
  assert.ok(findSecrets(file, secrets).length >= 2, "hex and raw, after the WAL is checkpointed");
});

test("an empty file, a non-SQLite file and a foreign database are refused, untouched (#19.12)", async () => {
  const { writeFileSync } = await import("node:fs");
  const sqlite3 = (await import("sqlite3")).default;
  const empty = tmpWalletFile("empty");
  writeFileSync(empty, "");
  const text = tmpWalletFile("text");
  writeFileSync(text, "not a database\n");
  const foreign = tmpWalletFile("foreign");
  await new Promise<void>((resolve, reject) => {
    const d = new sqlite3.Database(foreign, (err) => {
      if (err) return reject(err);
      d.exec("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine')", (e) =>
        e ? reject(e) : d.close(() => resolve()),
      );
    });
  });
  for (const [file, why] of [
    [empty, /is empty/],
    [text, /not an SQLite database/],
    [foreign, /without the wallet's tables/],
  ] as const) {
    const before = digest(file);
    await assert.rejects(Wallet.open(file, PASSPHRASE), (e: Error & { code?: string }) => {
      assert.equal(e.code, "NOT_A_WALLET");
      assert.match(e.message, why);
      assert.match(e.message, /left untouched.*--wallet/);
      return true;
    });
    assert.equal(digest(file), before, `${file} is unchanged`);
    assert.ok(!existsSync(`${file}-wal`), "no WAL was made beside it");
  }
  // A wallet made today carries the wallet's application id in its header.
  const { wallet, file } = await testWallet();
  await wallet.close();
  assert.equal(readFileSync(file).readUInt32BE(68), 0x5343574c);
  await (await Wallet.open(file, PASSPHRASE)).close();
});
