// Passphrase and mnemonic input: the terminal reader (echo off, editing keys, Ctrl-C / Ctrl-D), the piped-stdin
// line reader, and `wallet` itself on a pseudo-terminal and with a piped or empty stdin.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { newMnemonic } from "../../client/keys.ts";
import { lineReader, PromptCancelled, PromptEnded, readTerminalLine } from "../../client/prompt.ts";
import { systemRng } from "../../protocol/rng.ts";
import { runOnPty } from "../helpers/pty.ts";
import { ROOT } from "../helpers/se-process.ts";
import { PASSPHRASE, testWallet, tmpWalletFile } from "./wallet-helpers.ts";

/** A stand-in for a tty.ReadStream: records raw-mode changes. */
function fakeTty() {
  const s = new PassThrough() as PassThrough & {
    isRaw: boolean;
    setRawMode: (r: boolean) => void;
    modes: boolean[];
  };
  s.isRaw = false;
  s.modes = [];
  s.setRawMode = (r) => {
    s.isRaw = r;
    s.modes.push(r);
  };
  return s;
}

test("terminal reader: no echo, backspace and Ctrl-U edit, escape sequences dropped, raw mode restored", async () => {
  const input = fakeTty();
  let shown = "";
  const out = { write: (t: string) => (shown += t) };
  const p = readTerminalLine(input, out, "passphrase: ");
  input.write("sexr\u007f\u007fcret pass\u001b[Dword");
  input.write("\r");
  assert.equal(await p, "secret password");
  assert.equal(shown, "passphrase: \n", "nothing typed is shown");
  assert.deepEqual(input.modes, [true, false]);

  const q = readTerminalLine(input, out, "> ");
  input.write("garbage\u0015clean\r");
  assert.equal(await q, "clean");

  const echoed: string[] = [];
  const e = readTerminalLine(input, { write: (t) => echoed.push(t) }, "words: ", { echo: true });
  input.write("ab\u007fc\n");
  assert.equal(await e, "ac");
  assert.equal(echoed.join(""), "words: ab\b \bc\n");
});

test("terminal reader: Ctrl-C cancels, Ctrl-D on an empty line ends, both restore the mode", async () => {
  const input = fakeTty();
  const out = { write: () => {} };
  const c = readTerminalLine(input, out, "");
  input.write("half\u0003");
  await assert.rejects(c, PromptCancelled);
  assert.equal(input.isRaw, false);
  const d = readTerminalLine(input, out, "");
  input.write("\u0004");
  await assert.rejects(d, PromptEnded);
  assert.equal(input.isRaw, false);
  // Ctrl-D after some text is ignored (the line goes on), as a cooked terminal would not end the input either.
  const t = readTerminalLine(input, out, "");
  input.write("ab\u0004c\r");
  assert.equal(await t, "abc");
});

test("line reader: one line per call as soon as it is complete, undefined at the end", async () => {
  const input = new PassThrough();
  const next = lineReader(input);
  const first = next();
  input.write("one\r\ntw");
  assert.equal(await first, "one", "the first line, without waiting for the stream to end");
  const second = next();
  input.write("o\nthree");
  assert.equal(await second, "two");
  input.end();
  assert.equal(await next(), "three");
  assert.equal(await next(), undefined);
});

const WALLET = path.join(ROOT, "bin/wallet.js");
const baseEnv = () => {
  const env = { ...process.env };
  delete env.WALLET_PASSPHRASE;
  return env;
};

test("on a terminal the passphrase prompt shows, the passphrase does not, and one Enter is enough", async () => {
  const { wallet, file } = await testWallet();
  await wallet.close();
  const r = await runOnPty(
    [process.execPath, WALLET, "coins", "--wallet", file],
    [["wallet passphrase (not shown): ", `x\u007f${PASSPHRASE}\r`]],
    { env: baseEnv(), cwd: ROOT },
  );
  assert.deepEqual(r.unanswered, []);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /no coins yet/);
  assert.ok(!r.output.includes(PASSPHRASE), `the passphrase is not echoed to the terminal:\n${r.output}`);
});

test("on a terminal: create asks twice and refuses a mismatch; Ctrl-D and Ctrl-C say what happened", async () => {
  const file = tmpWalletFile();
  const mismatch = await runOnPty(
    [process.execPath, WALLET, "create", "--wallet", file],
    [
      ["passphrase for the new wallet (not shown): ", "first passphrase\r"],
      ["the same passphrase again: ", "other passphrase\r"],
    ],
    { env: baseEnv(), cwd: ROOT },
  );
  assert.equal(mismatch.code, 2, mismatch.output);
  assert.match(mismatch.output, /the two passphrases differ; nothing was created/);
  assert.ok(
    !mismatch.output.includes("first passphrase"),
    `the typed passphrase is not echoed to the terminal:\n${mismatch.output}`,
  );
  assert.equal(existsSync(file), false);

  const eof = await runOnPty(
    [process.execPath, WALLET, "create", "--wallet", file],
    [["(not shown): ", "\u0004"]],
    { env: baseEnv(), cwd: ROOT },
  );
  assert.equal(eof.code, 2, eof.output);
  assert.match(eof.output, /no passphrase entered \(input ended\)/);

  const cancel = await runOnPty(
    [process.execPath, WALLET, "create", "--wallet", file],
    [["(not shown): ", "half\u0003"]],
    { env: baseEnv(), cwd: ROOT },
  );
  assert.equal(cancel.code, 130, cancel.output);
  assert.match(cancel.output, /wallet: cancelled/);
});

function piped(args: string[], input: string | undefined, end: boolean, later?: string) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [WALLET, ...args], {
      cwd: ROOT,
      env: baseEnv(),
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    if (child.stdin) {
      child.stdin.write(input ?? "");
      if (end) child.stdin.end();
      if (later !== undefined) child.stderr!.once("data", () => child.stdin!.write(later));
    }
    child.on("exit", (code) => {
      child.stdin?.destroy();
      resolve({ code, stdout, stderr });
    });
  });
}

test("off a terminal: the first line of stdin, without waiting for its end; an empty stdin says how to pass it", async () => {
  const { wallet, file } = await testWallet();
  await wallet.close();
  const open = await piped(["coins", "--wallet", file], `${PASSPHRASE}\n`, false);
  assert.equal(open.code, 0, open.stderr);
  assert.match(open.stdout, /no coins yet/);
  // A stdin that gives nothing is told, after a second, what it is waiting for.
  const slow = await piped(["coins", "--wallet", file], "", false, `${PASSPHRASE}\n`);
  assert.equal(slow.code, 0, slow.stderr);
  assert.match(
    slow.stderr,
    /waiting for the passphrase on stdin \(or give --passphrase-file or WALLET_PASSPHRASE\)/,
  );
  const empty = await piped(["coins", "--wallet", file], undefined, true);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /no passphrase: .*--passphrase-file <file>, set WALLET_PASSPHRASE/);
  const missing = await piped(["coins", "--wallet", `${file}.missing`], undefined, true);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /no wallet at .*missing.*NO_WALLET/,
    "the file is checked before any passphrase",
  );
});

test("on a terminal restore asks the passphrase twice, then the mnemonic, none of it shown", async () => {
  const file = tmpWalletFile();
  const words = newMnemonic(systemRng);
  const r = await runOnPty(
    [process.execPath, WALLET, "restore", "--wallet", file, "--scrypt-n", "32768"],
    [
      ["passphrase for the new wallet (not shown): ", `${PASSPHRASE}\r`],
      ["the same passphrase again: ", `${PASSPHRASE}\r`],
      ["mnemonic (the words separated by spaces; not shown): ", `${words}\r`],
    ],
    { env: baseEnv(), cwd: ROOT, timeoutS: 120 },
  );
  assert.deepEqual(r.unanswered, []);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /wallet restored: /);
  assert.ok(
    !r.output.includes(words.split(" ").slice(0, 3).join(" ")),
    `the mnemonic was echoed:\n${r.output}`,
  );
  assert.ok(!r.output.includes(PASSPHRASE), `the passphrase is not echoed to the terminal:\n${r.output}`);
  assert.equal(existsSync(file), true);
});

test("a character split across two reads is read whole", async () => {
  const euro = Buffer.from("€", "utf8");
  const input = fakeTty();
  const p = readTerminalLine(input, { write: () => {} }, "");
  input.write(euro.subarray(0, 1));
  input.write(Buffer.concat([euro.subarray(1), Buffer.from("uro\r")]));
  assert.equal(await p, "€uro");
  const piped = new PassThrough();
  const next = lineReader(piped);
  const line = next();
  piped.write(euro.subarray(0, 2));
  piped.write(Buffer.concat([euro.subarray(2), Buffer.from("\n")]));
  assert.equal(await line, "€");
});
