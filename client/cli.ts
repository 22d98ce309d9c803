// The `wallet` command: the owner's side of the statechain from a terminal. Works against the simulator out of
// the box (`npm start` in one terminal, `wallet …` in another). Exit status: 0 ok, 1 refused or failed, 2 usage,
// 130 interrupted.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadPcrPolicy, type PcrPolicy } from "../attestation/pcr-policy.ts";
import { pemToDer, sha256Hex } from "../attestation/roots.ts";
import { type ChainBackend, ChainError, type ChainNetwork } from "../chain/backend.ts";
import { packageVersion } from "../common/package-root.ts";
import { didYouMean } from "../common/suggest.ts";
import type { PcrRelease } from "../proto/gen/common.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { MainstayKeyParams } from "../protocol/mainstay.ts";
import { outpointString } from "../protocol/outpoint.ts";
import { systemRng } from "../protocol/rng.ts";
import type { WalletNetwork } from "./address.ts";
import type { ExitState } from "./exit.ts";
import type { AttestationTrust } from "./owner.ts";
import { progressPrinter } from "./progress.ts";
import { lineReader, PromptCancelled, PromptEnded, readTerminalLine } from "./prompt.ts";
import type { SeClient, SeError } from "./se-client.ts";
import { WalletFileError } from "./store.ts";
import type { VerifyReport } from "./verify.ts";
import type { CoinSummary, ProgressFn, ReceiveResult, Wallet } from "./wallet.ts";

/**
 * The modules a command needs beyond argument checking (gRPC, bitcoinjs, libsecp256k1, the wallet): imported
 * once the arguments passed, so `wallet --help`, `--version` and usage errors answer without loading them.
 */
async function loadLib() {
  const [wallet, se, bitcoind, esplora, mainstay] = await Promise.all([
    import("./wallet.ts"),
    import("./se-client.ts"),
    import("../chain/bitcoind.ts"),
    import("../chain/esplora.ts"),
    import("../protocol/mainstay.ts"),
  ]);
  return {
    Wallet: wallet.Wallet,
    WalletError: wallet.WalletError,
    SeClient: se.SeClient,
    SeError: se.SeError,
    BitcoindChain: bitcoind.BitcoindChain,
    EsploraChain: esplora.EsploraChain,
    MAINSTAY_PUBLIC_KEY_PARAMS: mainstay.MAINSTAY_PUBLIC_KEY_PARAMS,
  };
}
let lib: Awaited<ReturnType<typeof loadLib>>;

export const VERSION: string = packageVersion(import.meta.url);

export const HELP = `wallet — an owner's statechain wallet that verifies everything

Usage: wallet <command> [arguments] [options]

Commands:
  create                    make a new wallet (prints its 24-word mnemonic once: write it down)
  restore                   rebuild a wallet from its mnemonic (--mnemonic-file, a prompt, or stdin)
  recover                   ask the SE for this seed's coins and rebuild them (after restore; tells
                            the SE which proof keys are this wallet's: see --one-at-a-time)
  address                   a receive address (B|C) to give a sender; --new for a fresh one,
                            --onchain for the wallet's bitcoin address (to fund deposits)
  info                      the wallet, its SE and chain, balances, attestation trust
  faucet                    regtest only: 10 btc to the wallet from the simulator's faucet key;
                            --amount a: until it holds a; --blocks n: n coinbases mined to it
  deposit <amount>          put bitcoin into a statechain coin (amount in sat, or e.g. 0.01btc);
                            --rebroadcast <coin>: send a deposit's funding transaction again
  coins                     the wallet's coins with their state and backup locks
  send <coin> <address>     hand a coin to the owner of a receive address
  receive [--wait]          take incoming coins (every check passes, or the coin is refused with the reason)
  withdraw <coin> <address> close a coin cooperatively to a bitcoin address
  exit <coin>               leave by the backup transaction (kick-off + CPFP first in kick-off mode)
  verify <coin>             check the coin: statechain, SMT and Mainstay proofs, backups, attestations
  trust-simulator --confirm trust the local simulator's attestation root and measurements (development)

A <coin> is its number in \`wallet coins\`, its statechain id (txid:vout) or a txid prefix.

Options:
  --wallet <file>           wallet file (default $WALLET_FILE or ~/.statechain/wallet.sqlite)
  --passphrase-file <file>  the passphrase (default $WALLET_PASSPHRASE, else a prompt on a terminal
                            with the echo off, else the first line of stdin)
  --se <host:port>          the SE (also --endpoint; default $WALLET_SE (or $SE_ENDPOINT), the wallet's
                            setting, or 127.0.0.1:50051); create and restore remember it
  --network <name>          create/restore: bitcoin, testnet, signet or regtest (default regtest)
  --se-data-dir <dir>       simulator data dir for chain access (default $SE_DATA_DIR or .data/simulator)
  --bitcoind-rpc <url>      chain through bitcoind JSON-RPC (with --rpc-user, --rpc-password)
  --esplora <url>           chain through an Esplora HTTP API
  --trust-simulator <pem>   also trust this simulator root (verdicts then say SIMULATOR)
  --pcrs <file>             PCR policy JSON: {"releases": [{"name", "pcr0", "pcr1", "pcr2", "pcr8"?}]}
  --mainstay-key <key>      Mainstay service key "<pubkey hex>:<chain code hex>", or "public"
  --mainstay-slot <n>       the SE's Mainstay slot (with --mainstay-key; else the ones recorded by trust-simulator)
  --allow-unpublished       receive/verify: accept coins without a proof of publication (only for an SE that
                            runs without Mainstay); they are marked UNPUBLISHED
  --save-attestations <dir> verify: write the attestation documents it checked to <dir>
  --fee-rate <sat/vB>       fee rate of the wallet's transactions (default 2)
  --poll-ms <ms>            how often waits poll (default 5000)
  --timeout <s>             how long waits last (default 1800)
  --no-wait                 deposit/withdraw/exit: return instead of waiting for blocks
  --mnemonic-file <file>    restore: the mnemonic
  --gap <n>                 recover: stop after n key slots in a row that own nothing (default 20)
  --one-at-a-time           recover: one request at a time, a random pause before each (--pause <s>, default 30)
  --blocks <n>              faucet: coinbases to mine to the wallet
  --amount <amount>         faucet: until the wallet holds this much on chain
  --token <token>           deposit: a prepaid deposit token (SEs with deposit_guard "token")
  --rebroadcast <coin>      deposit: broadcast the coin's funding transaction again (status funding-failed)
  --new, --onchain          address: see above
  --wait                    receive: poll until a transfer arrives
  --confirm                 trust-simulator: really trust it; --forget removes the trust
  --json                    machine-readable output (progress as JSON lines on stderr)
  -h, --help                this text, or a command's: \`wallet <command> --help\`, \`wallet help <command>\`
  -V, --version             the wallet's version

Exit status: 0 ok, 1 refused or failed, 2 usage, 130 interrupted (Ctrl-C; a line says what state it left).
`;

const COMMAND_HELP: Record<string, string> = {
  create: `wallet create [--network regtest] [--se host:port]
  Makes a new wallet file: a fresh 24-word mnemonic (BIP39), keys on m/8338'/<coin>'/0'/<role>'/<i>', the
  first receive address with its first coin's Paillier key made ahead (under a second), all secrets sealed
  under the passphrase (scrypt + AES-256-GCM). Prints the mnemonic once: with what the SE serves it rebuilds
  every coin (\`wallet restore\`, then \`wallet recover\`), since each coin's share and Paillier key are derived
  from it.`,
  restore: `wallet restore [--mnemonic-file <file>] [--network regtest]
  Rebuilds a wallet file from its mnemonic (from the file, typed at a prompt with the echo off, or stdin after the
  passphrase line): on-chain funds at once, and \`wallet receive\` collects transfers still in the mailboxes of
  its first ${20} addresses. Then pin the SE's enclave (\`wallet trust-simulator --confirm\`, or --pcrs) and run
  \`wallet recover\` to rebuild the coins the wallet held.`,
  recover: `wallet recover [--gap n] [--one-at-a-time [--pause s]] [--allow-unpublished]
  Asks the SE, key slot by key slot, what it holds for each proof key of this seed (each request signed by that
  key, so nobody can ask about another's coins), rebuilds each coin's share and Paillier key from the seed, checks
  it exactly as \`wallet verify\` does (statechain, SMT and Mainstay proofs, backups, attestations) and keeps it:
  active, exit-only (a transfer to this wallet cut after its backup was co-signed, or an SE that lost the key),
  or closed (sent, withdrawn, exited). Stops after --gap slots in a row that own nothing.
  What the SE learns: every proof key asked about, so it can link those coins to one wallet. --one-at-a-time
  spreads the requests out with random pauses (up to --pause seconds); the SE still sees the network address
  they come from (use Tor or another path for that).`,
  address: `wallet address [--new] [--onchain]
  A receive address (bech32m over version 0, proof key C, backup key B; "rsc1…" on regtest). The same unused
  address is shown until a coin arrives on it; --new makes a fresh one. --onchain shows the bitcoin address
  that funds deposits.`,
  info: "wallet info\n  The wallet file, network, SE, chain tip, balances and the attestation trust in force.",
  faucet: `wallet faucet [--amount a | --blocks n]
  Regtest (simulator) only. The simulator's node mines its own blocks to a faucet key, which so holds the chain's
  early coinbases (50 btc each): the faucet sends 10 btc from it (--amount a: what the wallet lacks to hold a on
  chain) in one transaction and mines a block to confirm it, however many halvings late in the chain. A node
  without such a key (a bitcoind without a wallet, a simulator chain older than the key) is paid in coinbases
  mined to the wallet instead, and 100 blocks to mature them; --blocks n mines n coinbases to it that way.`,
  deposit: `wallet deposit <amount> [--no-wait] [--token t]
wallet deposit --rebroadcast <coin> [--no-wait]
  Key generation with the SE, the backup co-signed, then the funding transaction from the wallet's on-chain
  coins. Shows the deposit address and waits for the confirmations the SE requires (--no-wait to return).
  A coin whose funding never reached the chain (its broadcast failed, or it left the mempool) is shown as
  funding-failed and not counted in the balance; --rebroadcast sends its funding transaction again.`,
  coins: `wallet coins
  Every coin with its status, amount, owner index and backup lock (blocks left in absolute mode; none for a coin
  that is gone: sent, withdrawn or exited), under a header line; an exit under way shows as exiting, with its
  stage and the command that continues it. The SE is asked
  about each coin the wallet holds: one it can no longer co-sign (its enclave lost the key shares) becomes
  exit-only (\`wallet exit <coin>\`, counted in the balance); one it does not know is shown as unknown to the SE and
  left out of the balance. A coin whose transfer was cut after the receiver's backup was co-signed is sent: the
  receiver's backup has the earlier lock and wins, and this wallet's cannot take it out.`,
  send: `wallet send <coin> <address>
  Hands the coin over: a new backup for the receiver, the statechain transaction, and t1 (this wallet's part of
  the key update that moves the SE's share to the receiver, encrypted to it); each step is shown as it goes
  (--json: progress lines on stderr). Interrupted, run it again to finish.`,
  receive: `wallet receive [--wait] [--timeout s] [--allow-unpublished]
  Reads the mailboxes of the wallet's addresses. A coin is taken only if every check passes (DESIGN.md 3.3 steps 6
  and 9: backups and locks, statechain, SMT and Mainstay proofs, the enclave's attestations against the PCR
  policy, the deletion receipt); otherwise it is refused and the failed check named (exit status 1). The Mainstay
  proof is checked in the slot and under the service key the wallet trusts for the SE; a coin the SE shows no
  publication for is refused, unless --allow-unpublished accepts it (an SE without Mainstay) and marks it.
  A coin whose transfer the SE can no longer complete (its enclave lost the key, e.g. it restarted) after this
  wallet's backup was co-signed is kept exit-only when every check of it passes: that backup has the earliest
  lock, and \`wallet exit <coin>\` takes the coin out by it.
  Only addresses still waiting for a coin are read, in batched requests. A message that does not decrypt or
  decode under the address's key is reported once and deleted from the mailbox; it does not end a --wait.`,
  withdraw: `wallet withdraw <coin> <address> [--no-wait]
  Signs WITHDRAW, co-signs the withdrawal transaction and waits until the SE reports it confirmed. Says what the
  address receives, the network fee and the SE's fee (--json: destination, receivedSat, feeSat, seFeeSat).`,
  exit: `wallet exit <coin> [--no-wait] [--timeout s]
  Broadcasts the coin's backup once its lock allows (in kick-off mode: the kick-off with a CPFP child first,
  then the backup after its relative lock), showing the blocks left and an ETA at the block interval. On regtest
  blocks come when mined: \`npx se mine <n>\` mines them on the simulator. Resumable: after --timeout (exit
  status 1, EXIT_TIMEOUT) or --no-wait, run it again to continue. Says what the backup pays this wallet and the
  fee the coin pays on the way (--json: destination, receivedSat, feeSat).`,
  verify: `wallet verify <coin> [--allow-unpublished] [--save-attestations <dir>]
  Every check of the coin by name; exit status 1 if any fails (a missing proof of publication fails unless
  --allow-unpublished). --save-attestations writes each key update's attestation document and deletion receipt
  to <dir> (with the PCR policy and simulator root they were checked against) and prints the
  \`verify-attestation\` command that checks each one again.`,
  "trust-simulator": `wallet trust-simulator [--confirm | --forget]
  Fetches the simulator's root certificate and enclave measurements from the SE and, with --confirm, stores them
  as trusted. A simulator gives no hardware guarantee: every verdict then says SIMULATOR.`,
};

/** One example per command, shown under its help (`wallet help <command>`). */
const COMMAND_EXAMPLES: Record<string, string[]> = {
  create: ["wallet create --network regtest --se 127.0.0.1:50051"],
  restore: ["wallet restore --mnemonic-file words.txt --network regtest"],
  recover: ["wallet recover", "wallet recover --one-at-a-time --pause 60"],
  address: ["wallet address --new", "wallet address --onchain"],
  info: ["wallet info --json"],
  faucet: ["wallet faucet --amount 1btc"],
  deposit: ["wallet deposit 0.01btc", "wallet deposit --rebroadcast 3"],
  coins: ["wallet coins --json"],
  send: ["wallet send 1 rsc1q…   (the receiver's address from its `wallet address`)"],
  receive: ["wallet receive --wait --timeout 600"],
  withdraw: ["wallet withdraw 2 bcrt1q…"],
  exit: ["wallet exit 2 --no-wait", "npx se mine 10 && wallet exit 2"],
  verify: ["wallet verify 2 --save-attestations ./evidence"],
  "trust-simulator": ["wallet trust-simulator --confirm"],
};

/** A command's help: what it does, then its examples. */
export function commandHelp(command: string): string {
  const examples = COMMAND_EXAMPLES[command] ?? [];
  const lines = examples.map((e) => `    ${e}`);
  return `${COMMAND_HELP[command]}\n\n  Example${examples.length > 1 ? "s" : ""}:\n${lines.join("\n")}`;
}

/** Options each command accepts beyond the global ones. */
const COMMAND_OPTIONS: Record<string, string[]> = {
  create: ["network", "scrypt-n"],
  restore: ["network", "mnemonic-file", "scrypt-n"],
  recover: ["gap", "one-at-a-time", "pause", "allow-unpublished"],
  address: ["new", "onchain"],
  info: [],
  faucet: ["blocks", "amount"],
  deposit: ["no-wait", "token", "rebroadcast"],
  coins: [],
  send: [],
  receive: ["wait", "allow-unpublished"],
  withdraw: ["no-wait"],
  exit: ["no-wait"],
  verify: ["allow-unpublished", "save-attestations"],
  "trust-simulator": ["confirm", "forget"],
};

const POSITIONALS: Record<string, string[]> = {
  deposit: ["amount"],
  send: ["coin", "address"],
  withdraw: ["coin", "address"],
  exit: ["coin"],
  verify: ["coin"],
};

const GLOBAL_OPTIONS = [
  "version",
  "wallet",
  "passphrase-file",
  "se",
  "endpoint",
  "se-data-dir",
  "bitcoind-rpc",
  "rpc-user",
  "rpc-password",
  "esplora",
  "trust-simulator",
  "pcrs",
  "mainstay-key",
  "mainstay-slot",
  "fee-rate",
  "poll-ms",
  "timeout",
  "json",
  "help",
];

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  stderrIsTTY: boolean;
  stdinIsTTY: boolean;
  /**
   * One line of input: on a terminal, typed after `prompt` (not echoed when `secret`; Ctrl-D rejects with
   * PromptEnded, Ctrl-C with PromptCancelled); otherwise the next line of stdin, undefined once it has ended.
   */
  readLine: (prompt: string, opts: { secret: boolean }) => Promise<string | undefined>;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /**
   * Calls `handler` on an interrupt (Ctrl-C: SIGINT) while a command runs; returns how to stop listening. The
   * command then ends at once with a line saying what state it left, exit status 130.
   */
  onInterrupt?: (handler: () => void) => () => void;
}

let stdinReader: (() => Promise<string | undefined>) | undefined;

export const processIo: CliIo = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  stderrIsTTY: Boolean(process.stderr.isTTY),
  stdinIsTTY: Boolean(process.stdin.isTTY),
  readLine(prompt, opts) {
    if (process.stdin.isTTY)
      return readTerminalLine(process.stdin, process.stderr, prompt, { echo: !opts.secret });
    stdinReader ??= lineReader(process.stdin);
    return stdinReader();
  },
  env: process.env,
  cwd: process.cwd(),
  onInterrupt(handler) {
    process.once("SIGINT", handler);
    return () => process.off("SIGINT", handler);
  },
};

class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;

const USAGE_CODES = new Set([
  "COIN_REF",
  "COIN_UNKNOWN",
  "COIN_AMBIGUOUS",
  "ADDRESS_CHECKSUM",
  "ADDRESS_PREFIX",
  "ADDRESS_NETWORK",
  "ADDRESS_VERSION",
  "ADDRESS_LENGTH",
  "ADDRESS_POINT",
  "ADDRESS_INVALID",
  "MNEMONIC_INVALID",
  "PCR_POLICY_INVALID",
  "PASSPHRASE_EMPTY",
]);

/** JSON with bigints as decimal strings. */
const toJson = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));

export function parseAmount(text: string): bigint {
  const t = text.trim().toLowerCase();
  const btc = /^(\d+)(?:\.(\d{1,8}))?\s*btc$/.exec(t);
  const sat = /^(\d+)\s*(?:sats?)?$/.exec(t);
  const n = btc
    ? BigInt(btc[1]!) * 100_000_000n + BigInt((btc[2] ?? "").padEnd(8, "0") || "0")
    : sat
      ? BigInt(sat[1]!)
      : undefined;
  if (n === 0n) throw new UsageError(`"${text}" is zero: an amount must be positive`);
  if (n !== undefined) return n;
  if (t.startsWith("-")) throw new UsageError(`"${text}" is negative: an amount must be positive`);
  // A bare decimal is most likely bitcoin, but a unit guessed wrong moves a hundred million times the amount.
  const decimal = /^(\d*)\.(\d+)$/.exec(t);
  if (decimal && decimal[2]!.length <= 8) {
    const sats = BigInt(decimal[1] || "0") * 100_000_000n + BigInt(decimal[2]!.padEnd(8, "0"));
    throw new UsageError(
      `"${text}" has no unit: write ${text}btc for bitcoin (${sats} sat), or satoshis as a whole number`,
    );
  }
  throw new UsageError(`"${text}" is not an amount (satoshis, like 100000, or bitcoin, like 0.001btc)`);
}

function parseMainstayKey(text: string): MainstayKeyParams {
  if (text === "public") return lib.MAINSTAY_PUBLIC_KEY_PARAMS;
  const m = /^([0-9a-fA-F]{66}):([0-9a-fA-F]{64})$/.exec(text);
  if (!m)
    throw new UsageError('--mainstay-key takes "public" or "<33-byte pubkey hex>:<32-byte chain code hex>"');
  return { basePubkey: Buffer.from(m[1]!, "hex"), chainCode: Buffer.from(m[2]!, "hex") };
}

function positiveNumber(v: string | boolean | undefined, what: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${what} must be a positive number`);
  return n;
}

interface SimulatorTrust {
  endpoint: string;
  rootPem: string;
  releases: PcrRelease[];
  trustedAt: number;
  /** The local Mainstay service's key ("<pubkey hex>:<chain code hex>"), as the simulator published it. */
  mainstayKey?: string;
  /** The SE's Mainstay slot, as it announced it when trusted (trust on first use: later changes are refused). */
  mainstaySlot?: number;
}

class Session {
  private se: SeClient | undefined;
  private chain: ChainBackend | undefined;
  readonly json: boolean;
  readonly progress: ReturnType<typeof progressPrinter>;

  constructor(
    readonly io: CliIo,
    readonly v: Values,
  ) {
    this.json = Boolean(v.json);
    this.progress = progressPrinter({ write: io.stderr, tty: io.stderrIsTTY && !this.json, json: this.json });
  }

  /** The last progress event of the command: what an interrupt says it left behind. */
  last: { event: string; detail: Record<string, unknown> } | undefined;

  readonly onProgress: ProgressFn = (event, detail = {}) => {
    this.last = { event, detail };
    this.progress.onProgress(event, detail);
  };

  out(human: string, json: unknown): void {
    this.progress.end();
    this.io.stdout(this.json ? `${toJson(json)}\n` : `${human}\n`);
  }

  walletFile(): string {
    const f = (this.v.wallet as string) ?? this.io.env.WALLET_FILE;
    return path.resolve(this.io.cwd, f ?? path.join(homedir(), ".statechain", "wallet.sqlite"));
  }

  /** A line typed at `prompt` (terminal) or read from stdin; PromptEnded becomes a usage error naming `what`. */
  private async ask(prompt: string, what: string, secret = true): Promise<string | undefined> {
    // Off a terminal there is no prompt to show: a stdin that gives nothing for a second is told what it is for.
    const hint = this.io.stdinIsTTY
      ? undefined
      : setTimeout(
          () =>
            this.io.stderr(
              `wallet: waiting for the ${what} on stdin (or give ${what === "mnemonic" ? "--mnemonic-file" : "--passphrase-file or WALLET_PASSPHRASE"})\n`,
            ),
          1000,
        );
    hint?.unref();
    try {
      return await this.io.readLine(prompt, { secret });
    } catch (e) {
      if (e instanceof PromptEnded) throw new UsageError(`no ${what} entered (input ended)`);
      throw e;
    } finally {
      clearTimeout(hint);
    }
  }

  /**
   * The passphrase: --passphrase-file, else $WALLET_PASSPHRASE, else typed at a prompt with the echo off (twice
   * for a new wallet, `confirm`), else the first line of a piped stdin.
   */
  async passphrase(opts: { confirm?: boolean } = {}): Promise<string> {
    let p: string | undefined;
    if (this.v["passphrase-file"])
      p = readText(this.v["passphrase-file"] as string, this.io.cwd).split(/\r?\n/)[0];
    else if (this.io.env.WALLET_PASSPHRASE) p = this.io.env.WALLET_PASSPHRASE;
    else if (this.io.stdinIsTTY) {
      p = await this.ask(
        opts.confirm ? "passphrase for the new wallet (not shown): " : "wallet passphrase (not shown): ",
        "passphrase",
      );
      if (p && opts.confirm) {
        if (p.length < 8) throw new UsageError("the passphrase must have at least 8 characters");
        const again = await this.ask("the same passphrase again: ", "passphrase");
        if (again !== p) throw new UsageError("the two passphrases differ; nothing was created");
      }
    } else p = await this.ask("", "passphrase");
    if (!p)
      throw new UsageError(
        this.io.stdinIsTTY
          ? "no passphrase entered"
          : "no passphrase: stdin is not a terminal and gave no line; give --passphrase-file <file>, set WALLET_PASSPHRASE, or pipe the passphrase as the first line of stdin",
      );
    return p;
  }

  /** restore's mnemonic: --mnemonic-file, else typed at a prompt (echo off), else the rest of stdin. */
  async mnemonicInput(): Promise<string> {
    if (this.v["mnemonic-file"]) return readText(this.v["mnemonic-file"] as string, this.io.cwd);
    const words: string[] = [];
    if (this.io.stdinIsTTY)
      words.push((await this.ask("mnemonic (the words separated by spaces; not shown): ", "mnemonic")) ?? "");
    else
      for (
        let line = await this.ask("", "mnemonic");
        line !== undefined;
        line = await this.ask("", "mnemonic")
      )
        words.push(line);
    const rest = words.join(" ").trim();
    if (!rest)
      throw new UsageError(
        "no mnemonic: give --mnemonic-file <file>, or the words on stdin (after the passphrase line unless the passphrase comes from --passphrase-file or WALLET_PASSPHRASE)",
      );
    return rest;
  }

  /** Where the SE's address came from, for the message when it cannot be reached. */
  endpointSource = "the default";

  /** --se, or --endpoint (`se status`'s name for it): one setting; both, and differing, is a usage error. */
  seFlag(): { value: string; name: string } | undefined {
    const se = this.v.se as string | undefined;
    const alias = this.v.endpoint as string | undefined;
    if (se !== undefined && alias !== undefined && se !== alias)
      throw new UsageError(
        `--se ${se} and --endpoint ${alias} name the same setting (the SE's address): give one`,
      );
    if (se !== undefined) return { value: se, name: "--se" };
    if (alias !== undefined) return { value: alias, name: "--endpoint" };
    return undefined;
  }

  async endpoint(wallet?: Wallet): Promise<string> {
    const stored = wallet ? await wallet.getConfig<string>("se") : undefined;
    const flag = this.seFlag();
    // $SE_ENDPOINT is what `se status` reads: the same setting under the other CLI's name.
    const [endpoint, source] = flag
      ? [flag.value, flag.name]
      : this.io.env.WALLET_SE
        ? [this.io.env.WALLET_SE, "WALLET_SE"]
        : this.io.env.SE_ENDPOINT
          ? [this.io.env.SE_ENDPOINT, "SE_ENDPOINT"]
          : stored
            ? [stored, "the wallet's setting"]
            : ["127.0.0.1:50051", "the default"];
    this.endpointSource = source;
    return endpoint;
  }

  seClient(endpoint: string): SeClient {
    this.se ??= new lib.SeClient(endpoint, { rng: systemRng, deadlineMs: 120_000 });
    return this.se;
  }

  /** The chain backend from the options, or the simulator's embedded node; undefined when none is reachable. */
  chainFor(network: WalletNetwork): { chain?: ChainBackend; why?: string } {
    const net = network as ChainNetwork;
    const esplora = (this.v.esplora as string) ?? this.io.env.WALLET_ESPLORA;
    if (esplora) {
      this.chain = new lib.EsploraChain({ url: esplora, network: net });
      return { chain: this.chain };
    }
    const rpc = (this.v["bitcoind-rpc"] as string) ?? this.io.env.WALLET_BITCOIND_RPC;
    if (rpc) {
      this.chain = new lib.BitcoindChain({
        url: rpc,
        user: (this.v["rpc-user"] as string) ?? this.io.env.WALLET_RPC_USER ?? "",
        password: (this.v["rpc-password"] as string) ?? this.io.env.WALLET_RPC_PASSWORD ?? "",
        network: net,
      });
      return { chain: this.chain };
    }
    const from = this.v["se-data-dir"]
      ? "--se-data-dir"
      : this.io.env.SE_DATA_DIR
        ? "SE_DATA_DIR"
        : "the default";
    const dir = path.resolve(
      this.io.cwd,
      (this.v["se-data-dir"] as string) ?? this.io.env.SE_DATA_DIR ?? ".data/simulator",
    );
    const file = path.join(dir, "bitcoin-rpc.json");
    let creds: { url: string; user: string; password: string };
    try {
      creds = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      return {
        why: `no chain access: give --bitcoind-rpc <url> (with --rpc-user/--rpc-password) or --esplora <url>, or run the simulator (\`npm start\`, or its chain alone: \`npx se start --chain-only\`) so that ${file} exists (data dir from ${from}: --se-data-dir or SE_DATA_DIR)`,
      };
    }
    this.simulatorChain = { dir, from };
    this.chain = new lib.BitcoindChain({
      url: creds.url,
      user: creds.user,
      password: creds.password,
      network: net,
      // The wallet talks to the simulator's own node here, not to a bitcoind the user configured.
      name: `the simulator's embedded regtest node at ${creds.url}`,
    });
    return { chain: this.chain };
  }

  /** Set when the chain is the simulator's embedded node, found through its data dir. */
  simulatorChain: { dir: string; from: string } | undefined;

  /** --mainstay-key, else the local service's key stored with the simulator trust. */
  async mainstayKey(wallet: Wallet): Promise<MainstayKeyParams | undefined> {
    if (this.v["mainstay-key"]) return parseMainstayKey(this.v["mainstay-key"] as string);
    const stored = await wallet.getConfig<SimulatorTrust>("trust.simulator");
    return stored?.mainstayKey ? parseMainstayKey(stored.mainstayKey) : undefined;
  }

  /** --mainstay-slot, else the slot recorded with the simulator trust (with its key, never without). */
  async mainstaySlot(wallet: Wallet): Promise<number | undefined> {
    const flag = this.v["mainstay-slot"] as string | undefined;
    if (flag !== undefined) {
      if (!/^\d{1,10}$/.test(flag) || Number(flag) > 0xffffffff)
        throw new UsageError("--mainstay-slot takes a slot number (0 to 4294967295)");
      return Number(flag);
    }
    if (this.v["mainstay-key"]) return undefined;
    const stored = await wallet.getConfig<SimulatorTrust>("trust.simulator");
    return stored?.mainstayKey ? stored.mainstaySlot : undefined;
  }

  async trust(wallet: Wallet, _se: SeClient): Promise<AttestationTrust> {
    const stored = await wallet.getConfig<SimulatorTrust>("trust.simulator");
    const pemFile = this.v["trust-simulator"] as string | undefined;
    const simulatorRootPem = pemFile ? readText(pemFile, this.io.cwd) : stored?.rootPem;
    if (pemFile) pemToDer(simulatorRootPem!);
    let pcrPolicy: PcrPolicy | undefined;
    // Measurements come from the owner (--pcrs) or from what the owner pinned with `trust-simulator --confirm`,
    // never from what the SE reports about itself at verification time (audit #18.11).
    if (this.v.pcrs) pcrPolicy = loadPcrPolicy(readText(this.v.pcrs as string, this.io.cwd));
    else if (stored) pcrPolicy = loadPcrPolicy({ releases: releasesJson(stored.releases) });
    else if (pemFile)
      throw new lib.WalletError(
        "NO_PCR_POLICY",
        "--trust-simulator <pem> trusts a root, not the code it attests: also give --pcrs <file> with the measurements you expect, or pin the simulator's once with `wallet trust-simulator --confirm`",
        "precondition",
      );
    return { aws: true, simulatorRootPem, pcrPolicy };
  }

  async close(): Promise<void> {
    this.se?.close();
    await this.chain?.close().catch(() => undefined);
  }
}

function releasesJson(rs: PcrRelease[]) {
  return rs.map((r) => ({
    name: r.name,
    pcr0: r.pcr0,
    pcr1: r.pcr1,
    pcr2: r.pcr2,
    ...(r.pcr8 ? { pcr8: r.pcr8 } : {}),
  }));
}

function readText(file: string, cwd: string): string {
  try {
    return readFileSync(path.resolve(cwd, file), "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

/** A chain that is not there: every use says how to configure one. */
function missingChain(why: string, network: ChainNetwork): ChainBackend {
  const no = async (): Promise<never> => {
    throw new lib.WalletError("NO_CHAIN", why, "precondition");
  };
  return {
    network,
    kind: "bitcoind",
    tipHeight: no,
    getTx: no,
    getTxStatus: no,
    getUtxo: no,
    findUtxos: no,
    broadcast: no,
    estimateFeeRate: no,
    onBlock: () => () => {},
    close: async () => {},
  };
}

const sat = (n: bigint) => `${n.toLocaleString("en-US")} sat`;

/** What `wallet faucet` adds without --amount or --blocks. */
const FAUCET_DEFAULT_SAT = 10n * 100_000_000n;

function lockText(c: CoinSummary): string {
  if (c.backupMode === "kickoff") return `kick-off, then ${c.backupLock} blocks`;
  return `height ${c.backupLock}${c.blocksToLock !== undefined ? ` (${c.blocksToLock} blocks left)` : ""}`;
}

function attestationText(c: CoinSummary): string {
  if (c.attestations.length === 0) return "";
  const ok = c.attestations.every((a) => a.valid);
  const sim = c.attestations.some((a) => a.simulator);
  return `attestations ${ok ? "verified" : "FAILED"}${sim ? " (SIMULATOR: no hardware guarantee)" : ""}`;
}

/** Coins that left the wallet (sent, withdrawn, exited): their backups lock nothing the wallet holds. */
const GONE = new Set(["sent", "withdrawn", "exited"]);

/** The status `wallet coins` shows: the SE's UNKNOWN, and an exit under way before anything is broadcast. */
function shownStatus(c: CoinSummary): string {
  // A coin its SE says it does not know is shown as such, whatever the wallet last recorded (--json: seStatus).
  if (c.seStatus === "UNKNOWN" && !c.inBalance) return "unknown-to-the-SE";
  // A coin whose funding left the chain (double spent, or missing past the SE's grace) is not counted (#19.8).
  if ((c.seFunding === "DOUBLE_SPENT" || c.seFunding === "MISSING") && !c.inBalance) return "funding-lost";
  if (c.exit && !GONE.has(c.status) && c.exit.stage !== "confirmed") return "exiting";
  return c.status;
}

/** Where an exit stands, in words. */
function exitStageText(st: ExitState): string {
  switch (st.stage) {
    case "waiting-kickoff":
      return "the kick-off is broadcast, waiting for it to confirm";
    case "waiting-lock":
      return `waiting for the backup's lock: it may be mined from height ${st.unlockHeight}${st.broadcast ? " (the kick-off is confirmed)" : "; nothing is broadcast yet"}`;
    case "backup-broadcast":
      return `the backup ${st.backupTxid} is broadcast, waiting for it to confirm`;
    case "confirmed":
      return `the backup ${st.backupTxid} confirmed at height ${st.backupHeight}`;
  }
}

const COIN_COLUMNS = ["coin", "status", "amount", "owner", "backup lock", "statechain id"];

/** `wallet coins`: a header line, a row per coin, the lines that say what to do under a coin. */
export function coinsTable(coins: CoinSummary[]): string {
  const rows = coins.map((c) => [
    `#${c.number}`,
    shownStatus(c),
    sat(c.amountSat),
    String(c.ownerIndex),
    // A coin that is gone has no backup of the wallet's to wait for.
    GONE.has(c.status) ? "" : lockText(c),
    c.statechainId,
  ]);
  const widths = COIN_COLUMNS.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((x, i) => (i === 2 ? x.padStart(widths[i]!) : i === cells.length - 1 ? x : x.padEnd(widths[i]!)))
      .join("  ");
  const out = [line(COIN_COLUMNS)];
  coins.forEach((c, i) => {
    out.push(line(rows[i]!));
    out.push(...coinNotes(c));
  });
  return out.join("\n");
}

function coinNotes(c: CoinSummary): string[] {
  const lines: string[] = [];
  if (c.exit && !GONE.has(c.status))
    lines.push(
      `    exiting: ${exitStageText(c.exit)}${!c.exit.broadcast && c.status === "active" ? " (until then the coin can still be sent or withdrawn)" : ""}; \`wallet exit ${c.number}\` continues`,
    );
  if (c.receiver) {
    const since = new Date(c.receiver.sinceMs).toISOString();
    lines.push(
      c.status === "sent"
        ? `    sent to ${c.receiver.address} (${since})`
        : `    being sent to ${c.receiver.address} since ${since}: finish with \`wallet send ${c.number} ${c.receiver.address}\``,
    );
  }
  if (c.hint) lines.push(`    ${c.hint}`);
  return lines;
}

function balanceText(bal: Awaited<ReturnType<Wallet["balance"]>>): string {
  const parts = [
    `${sat(bal.onchainSat)} on chain (${bal.utxos} outputs), ${sat(bal.coinsSat)} in ${bal.coins} coin(s)`,
  ];
  if (bal.exitOnlyCoins > 0)
    parts.push(
      `of which ${sat(bal.exitOnlySat)} in ${bal.exitOnlyCoins} exit-only coin(s) (\`wallet exit <coin>\`)`,
    );
  if (bal.unknownCoins > 0)
    parts.push(
      `not counted: ${sat(bal.unknownSat)} in ${bal.unknownCoins} coin(s) unknown to the SE (\`wallet coins\`)`,
    );
  if (bal.fundingLostCoins > 0)
    parts.push(
      `not counted: ${sat(bal.fundingLostSat)} in ${bal.fundingLostCoins} coin(s) whose funding transaction left the chain (\`wallet coins\`)`,
    );
  return parts.join("; ");
}

function recoverText(r: Awaited<ReturnType<Wallet["recover"]>>): string {
  const lines = [`asked about ${r.scanned} key slot(s); coins on ${r.usedSlots.length}`];
  for (const c of r.stored) {
    const why = r.coins.find((x) => outpointString(x.statechainId) === c.statechainId)?.why;
    lines.push(
      `recovered #${c.number} ${c.statechainId}: ${sat(c.amountSat)}, ${c.status}, owner ${c.ownerIndex}${why ? ` (${why})` : ""}`,
    );
  }
  for (const x of r.refused)
    lines.push(
      `REFUSED ${x.statechainId}: ${x.reason} [${x.code}${x.failedChecks?.length ? `: ${x.failedChecks.join("; ")}` : ""}]`,
    );
  for (const id of r.incoming)
    lines.push(`incoming ${id}: a transfer to this wallet is under way; \`wallet receive\` takes it`);
  if (r.stored.length === 0 && r.refused.length === 0 && r.incoming.length === 0)
    lines.push("the SE holds no coin for this seed");
  return lines.join("\n");
}

function receiveText(r: ReceiveResult): string {
  const lines: string[] = [];
  for (const c of r.received)
    lines.push(
      c.status === "exit-only"
        ? `received #${c.number} ${c.statechainId}: ${sat(c.amountSat)}, owner ${c.ownerIndex}, EXIT ONLY: the SE cannot complete the transfer (its enclave lost the coin's key, e.g. it restarted) after this wallet's backup was co-signed; that backup, checked, has the earliest lock: \`wallet exit ${c.number}\` takes the coin out by it (${lockText(c)})`
        : `received #${c.number} ${c.statechainId}: ${sat(c.amountSat)}, owner ${c.ownerIndex}, ${attestationText(c)}${c.publication === "unpublished" ? ", UNPUBLISHED (accepted with --allow-unpublished: no proof of publication)" : ""}`,
    );
  for (const x of r.refused)
    lines.push(
      `REFUSED ${x.statechainId ?? "a transfer"}: ${x.reason} [${x.code}${x.failedChecks?.length ? `: ${x.failedChecks.join(", ")}` : ""}]`,
    );
  if (lines.length === 0) lines.push("no incoming transfers");
  return lines.join("\n");
}

interface SavedAttestation {
  ownerIndex: number;
  document: string;
  receipt: string;
  nonce: string;
  madeAt?: string;
  /** The verify-attestation command that checks the document again, as of its own time. */
  command: string;
}

/**
 * `verify --save-attestations <dir>`: each key update's document and receipt as files, with the PCR policy and
 * simulator root the wallet checked them against, and the verify-attestation command that checks each again.
 */
function saveAttestations(
  dir: string,
  cwd: string,
  r: VerifyReport,
  trust: AttestationTrust,
): SavedAttestation[] {
  if (r.documents.length === 0) return [];
  const abs = path.resolve(cwd, dir);
  const file = (name: string) => path.join(dir, name);
  try {
    mkdirSync(abs, { recursive: true });
    const [txid, vout] = r.statechainId.split(":");
    const prefix = `${txid!.slice(0, 16)}-${vout}`;
    const extra: string[] = [];
    if (trust.pcrPolicy) {
      const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
      const releases = trust.pcrPolicy.releases.map((x) => ({
        name: x.name,
        pcr0: hex(x.pcr0),
        pcr1: hex(x.pcr1),
        pcr2: hex(x.pcr2),
        ...(x.pcr8 ? { pcr8: hex(x.pcr8) } : {}),
      }));
      writeFileSync(path.join(abs, "pcrs.json"), `${JSON.stringify({ releases }, null, 2)}\n`);
      extra.push(`--pcrs ${file("pcrs.json")}`);
    }
    if (trust.simulatorRootPem) {
      writeFileSync(path.join(abs, "sim-root.pem"), trust.simulatorRootPem);
      extra.push(`--sim-root ${file("sim-root.pem")}`);
    }
    return r.documents.map((d) => {
      const base = `${prefix}-owner-${d.ownerIndex}`;
      writeFileSync(path.join(abs, `${base}.attestation`), d.document);
      writeFileSync(path.join(abs, `${base}.receipt`), d.receipt);
      const nonce = Buffer.from(d.nonce).toString("hex");
      const madeAt = d.madeAt !== undefined ? new Date(d.madeAt).toISOString() : undefined;
      return {
        ownerIndex: d.ownerIndex,
        document: file(`${base}.attestation`),
        receipt: file(`${base}.receipt`),
        nonce,
        madeAt,
        command: [
          "npx verify-attestation",
          file(`${base}.attestation`),
          `--nonce ${nonce}`,
          `--receipt ${file(`${base}.receipt`)}`,
          ...(madeAt ? [`--at ${madeAt}`] : []),
          ...extra,
        ].join(" "),
      };
    });
  } catch (e) {
    throw new lib.WalletError(
      "SAVE_FAILED",
      `cannot save the attestations in ${dir}: ${(e as Error).message}`,
      "precondition",
    );
  }
}

function savedText(dir: string, saved: SavedAttestation[]): string {
  if (saved.length === 0)
    return "no attestation documents to save: the coin has had no key update (no transfer)";
  return [
    `saved ${saved.length} attestation document(s) in ${dir}, each checked again (as of its own time) by:`,
    ...saved.map((x) => `  owner ${x.ownerIndex}: ${x.command}`),
  ].join("\n");
}

function verifyText(r: VerifyReport): string {
  const mark = { pass: "✔", fail: "✘", skip: "–" } as const;
  const lines = r.checks.map((c) => `${mark[c.status]} ${c.name.padEnd(24)} ${c.detail}`);
  const failed = r.checks.filter((c) => c.status === "fail").length;
  lines.push(
    r.ok
      ? `coin ${r.statechainId} verified${r.simulator ? " — SIMULATOR attestations: no hardware guarantee" : ""}`
      : `coin ${r.statechainId}: ${failed} check(s) FAILED`,
  );
  return lines.join("\n");
}

async function run(s: Session, command: string, args: string[]): Promise<number> {
  const v = s.v;
  const file = s.walletFile();
  // Arguments are checked before any passphrase is asked or any file opened.
  s.seFlag();
  const amount = command === "deposit" && v.rebroadcast === undefined ? parseAmount(args[0]!) : 0n;
  if (command === "faucet" && v.blocks !== undefined && v.amount !== undefined)
    throw new UsageError("faucet takes --blocks or --amount, not both");
  const faucetAmount =
    command === "faucet" && v.amount !== undefined ? parseAmount(v.amount as string) : undefined;
  if (command === "create" || command === "restore") {
    const network = ((v.network as string) ?? "regtest") as WalletNetwork;
    if (!["bitcoin", "testnet", "signet", "regtest"].includes(network))
      throw new UsageError(`unknown network "${network}" (bitcoin, testnet, signet or regtest)`);
    if (existsSync(file))
      throw new WalletFileError(
        "WALLET_EXISTS",
        `${file} already exists; it is not overwritten`,
        "precondition",
      );
    const passphrase = await s.passphrase({ confirm: true });
    if (passphrase.length < 8) throw new UsageError("the passphrase must have at least 8 characters");
    const mnemonic = command === "restore" ? await s.mnemonicInput() : undefined;
    const { wallet, mnemonic: words } = await lib.Wallet.create({
      file,
      passphrase,
      network,
      mnemonic,
      scryptN: v["scrypt-n"] !== undefined ? positiveNumber(v["scrypt-n"], "--scrypt-n", 0) : undefined,
      onProgress: s.onProgress,
    });
    try {
      const se = s.seFlag();
      if (se) await wallet.setConfig("se", se.value);
      const { address } = await wallet.receiveAddress();
      const onchain = await wallet.fundingAddress();
      s.out(
        command === "create"
          ? [
              `wallet created: ${file} (${network})`,
              "",
              "mnemonic (write it down; it is shown only now):",
              `  ${words}`,
              "",
              `receive address  ${address}`,
              `bitcoin address  ${onchain}  (funds deposits)`,
            ].join("\n")
          : [
              `wallet restored: ${file} (${network}); \`wallet receive\` collects transfers to its addresses`,
              `receive address  ${address}`,
              "next: pin the SE's enclave (`wallet trust-simulator --confirm` on the simulator, or --pcrs), then",
              "      `wallet recover` rebuilds the coins this seed held (it tells the SE which proof keys are yours)",
            ].join("\n"),
        {
          file,
          network,
          ...(command === "create" ? { mnemonic: words } : {}),
          receiveAddress: address,
          onchainAddress: onchain,
        },
      );
    } finally {
      await wallet.close();
    }
    return 0;
  }

  if (!existsSync(file))
    throw new WalletFileError(
      "NO_WALLET",
      `no wallet at ${file} (create one with \`wallet create\`, or pass --wallet)`,
      "not_found",
    );
  const wallet = await lib.Wallet.open(file, await s.passphrase());
  try {
    if (command === "address") {
      if (v.onchain) {
        const a = await wallet.fundingAddress();
        s.out(a, { onchainAddress: a });
      } else {
        const a = await wallet.receiveAddress({ fresh: Boolean(v.new) });
        s.out(a.address, a);
      }
      return 0;
    }
    const endpoint = await s.endpoint(wallet);
    const se = s.seClient(endpoint);
    const { chain, why } = s.chainFor(wallet.network);
    const needsChain = ["faucet", "deposit", "receive", "withdraw", "exit", "verify", "recover"].includes(
      command,
    );
    if (!chain && needsChain) throw new lib.WalletError("NO_CHAIN", why!, "precondition");
    // Deposits too: the depositor takes locks and intervals from the enclave's attested policy. Every co-signing
    // command (deposit, send, withdraw) checks the enclave's signature on c3 under its attested instance key.
    const trustNeeded = ["receive", "verify", "info", "deposit", "send", "withdraw", "recover"].includes(
      command,
    );
    const trust: AttestationTrust = trustNeeded ? await s.trust(wallet, se) : { aws: true };
    wallet.connect({
      se,
      chain: chain ?? missingChain(why!, wallet.network as ChainNetwork),
      trust,
      feeRateSatVb: positiveNumber(v["fee-rate"], "--fee-rate", 2),
      mainstayKey: await s.mainstayKey(wallet),
      mainstaySlot: await s.mainstaySlot(wallet),
      allowUnpublished: Boolean(v["allow-unpublished"]),
      // Waits for blocks say the network: an ETA at its block interval, on regtest how to mine them.
      onProgress: (event, detail) =>
        s.onProgress(event, event === "confirmations" ? { network: wallet.network, ...detail } : detail),
    });
    const wait = {
      pollMs: positiveNumber(v["poll-ms"], "--poll-ms", 5000),
      timeoutMs: positiveNumber(v.timeout, "--timeout", 1800) * 1000,
    };
    switch (command) {
      case "info": {
        const info = await se.call("getInfo", {}).catch((e: Error) => e);
        // Coins first: asking the SE about each coin decides which count in the balance.
        const coins = await wallet.coins();
        const bal = chain ? await wallet.balance().catch(() => undefined) : undefined;
        const reachable = !(info instanceof Error);
        const data = {
          file,
          network: wallet.network,
          se: {
            endpoint,
            reachable,
            ...(reachable
              ? {
                  network: info.network,
                  version: info.version,
                  attestationMode: info.enclave?.attestationMode,
                  chainTip: info.chainTip,
                  backupMode: info.backupMode === 2 ? "kickoff" : "absolute",
                  initLock: info.initLock,
                  locktimeInterval: info.locktimeInterval,
                }
              : { error: info.message }),
          },
          balance: bal,
          coins: coins.length,
          trust: {
            awsRoot: true,
            simulatorRoot: trust.simulatorRootPem ? sha256Hex(pemToDer(trust.simulatorRootPem)) : undefined,
            pcrReleases: trust.pcrPolicy?.releases.map((r) => r.name) ?? [],
          },
        };
        s.out(
          [
            `wallet   ${file} (${wallet.network})`,
            `SE       ${endpoint} ${reachable ? `— ${info.network}, ${info.enclave?.attestationMode} enclave, tip ${info.chainTip}, ${data.se.reachable && "backupMode" in data.se ? data.se.backupMode : ""} backups` : `unreachable: ${info instanceof lib.SeError && info.unreachable ? `${info.message}\n         ${unreachableHint(endpoint).trim().replace(/\n\s*/g, "; ")}` : (info as Error).message}`}`,
            `balance  ${bal ? balanceText(bal) : "chain unavailable"}`,
            `trust    AWS Nitro root${trust.simulatorRootPem ? ` + SIMULATOR root ${data.trust.simulatorRoot!.slice(0, 16)}…` : ""}; PCR releases: ${data.trust.pcrReleases.join(", ") || "none (receiving refuses every coin)"}`,
          ].join("\n"),
          data,
        );
        return 0;
      }
      case "faucet": {
        const r =
          v.blocks !== undefined
            ? await wallet.faucet(positiveNumber(v.blocks, "--blocks", 1))
            : faucetAmount !== undefined
              ? await wallet.faucet(1, faucetAmount)
              : await wallet.faucetSend(FAUCET_DEFAULT_SAT);
        s.out(
          r.source === "faucet"
            ? `the simulator's faucet sent ${sat(r.sentSat!)} to the wallet (txid ${r.txid}, confirmed by a block mined now): ${sat(r.onchainSat)} on chain`
            : r.source === "coinbase"
              ? `mined ${r.blocks} coinbase(s) to the wallet: ${sat(r.onchainSat)} on chain`
              : `the wallet holds ${sat(r.onchainSat)} on chain already: nothing to add`,
          r,
        );
        return 0;
      }
      case "deposit": {
        if (v.rebroadcast !== undefined) {
          const c = await wallet.rebroadcastFunding(v.rebroadcast as string, {
            ...wait,
            wait: !v["no-wait"],
          });
          s.out(`coin #${c.number} ${c.statechainId}: funding rebroadcast, ${c.status}`, c);
          return 0;
        }
        const c = await wallet.deposit(amount, {
          ...wait,
          wait: !v["no-wait"],
          token: v.token as string | undefined,
        });
        s.out(
          [
            `coin #${c.number} ${c.statechainId}: ${sat(c.amountSat)}, ${c.status}`,
            `  deposit address ${c.depositAddress}`,
            `  backup unlocks: ${lockText(c)}`,
          ].join("\n"),
          c,
        );
        return 0;
      }
      case "coins": {
        const coins = await wallet.coins();
        s.out(coins.length ? coinsTable(coins) : "no coins yet (`wallet deposit <amount>`)", coins);
        return 0;
      }
      case "send": {
        const c = await wallet.send(args[0]!, args[1]!);
        s.out(
          `sent coin #${c.number} ${c.statechainId}; it is the receiver's once they run \`wallet receive\``,
          c,
        );
        return 0;
      }
      case "recover": {
        s.onProgress("recover-start", {
          note: "the SE learns every proof key asked about, and can link those coins to this wallet",
        });
        const r = await wallet.recover({
          gap: v.gap !== undefined ? positiveNumber(v.gap, "--gap", 20) : undefined,
          oneAtATime: Boolean(v["one-at-a-time"]),
          maxPauseMs: positiveNumber(v.pause, "--pause", 30) * 1000,
        });
        s.out(recoverText(r), {
          scanned: r.scanned,
          usedSlots: r.usedSlots,
          coins: r.stored,
          refused: r.refused,
          incoming: r.incoming,
        });
        return r.refused.length > 0 ? 1 : 0;
      }
      case "receive": {
        const r = await wallet.receive({ ...wait, wait: Boolean(v.wait) });
        s.out(receiveText(r), r);
        return r.refused.length > 0 ? 1 : 0;
      }
      case "withdraw": {
        const r = await wallet.withdraw(args[0]!, args[1]!, { ...wait, wait: !v["no-wait"] });
        const fees = `network fee ${sat(r.feeSat)}${r.seFeeSat > 0n ? `, SE fee ${sat(r.seFeeSat)}` : ""}`;
        s.out(
          [
            r.coin.status === "withdrawn"
              ? `coin #${r.coin.number} withdrawn: ${sat(r.receivedSat)} received at ${r.destination} (${fees})`
              : `coin #${r.coin.number} withdrawing: ${sat(r.receivedSat)} to ${r.destination} once confirmed (${fees}); \`wallet withdraw ${r.coin.number} ${r.destination}\` waits for it`,
            `  withdrawal txid ${r.txid}`,
          ].join("\n"),
          r,
        );
        return 0;
      }
      case "exit": {
        const r = await wallet.exit(args[0]!, { ...wait, wait: !v["no-wait"] });
        const st = r.state;
        const pays = `${sat(r.receivedSat)} to ${r.destination} (this wallet's backup key; fee ${sat(r.feeSat)} from the coin)`;
        s.out(
          st.stage === "confirmed"
            ? [
                `coin #${r.coin.number} exited: ${sat(r.receivedSat)} received at ${r.destination} (this wallet's backup key: on-chain funds now; fee ${sat(r.feeSat)} from the coin)`,
                `  backup ${st.backupTxid} confirmed at height ${st.backupHeight}`,
              ].join("\n")
            : [
                `coin #${r.coin.number} exiting: ${exitStageText(st)}`,
                `  the backup pays ${pays}`,
                `  run \`wallet exit ${r.coin.number}\` again to continue`,
              ].join("\n"),
          r,
        );
        return 0;
      }
      case "verify": {
        const r = await wallet.verify(args[0]!);
        const dir = v["save-attestations"] as string | undefined;
        const saved = dir !== undefined ? saveAttestations(dir, s.io.cwd, r, trust) : undefined;
        const { documents: _documents, ...report } = r;
        s.out(
          [verifyText(r), ...(saved ? [savedText(dir!, saved)] : [])].join("\n"),
          saved ? { ...report, saved } : report,
        );
        return r.ok ? 0 : 1;
      }
      case "trust-simulator": {
        if (v.forget) {
          await wallet.setConfig("trust.simulator", undefined);
          s.out("the simulator root is no longer trusted", { trusted: false });
          return 0;
        }
        const info = await se.call("getInfo", {});
        const e = info.enclave;
        if (e?.attestationMode !== "simulator" || !e.simulatorRootPem)
          throw new lib.WalletError(
            "NOT_A_SIMULATOR",
            `the SE at ${endpoint} runs a ${e?.attestationMode ?? "unknown"} enclave, not the simulator`,
            "precondition",
          );
        const fingerprint = sha256Hex(pemToDer(e.simulatorRootPem));
        const described = [
          `simulator root SHA-256 ${fingerprint}`,
          ...e.expectedPcrs.map(
            (r) =>
              `release ${r.name}: PCR0 ${r.pcr0.slice(0, 16)}… PCR1 ${r.pcr1.slice(0, 16)}… PCR2 ${r.pcr2.slice(0, 16)}…`,
          ),
        ];
        const m = info.mainstay;
        const mainstayKey =
          m?.servicePublicKey.length === 33 && m.serviceChainCode.length === 32
            ? `${Buffer.from(m.servicePublicKey).toString("hex")}:${Buffer.from(m.serviceChainCode).toString("hex")}`
            : undefined;
        const mainstaySlot = mainstayKey && m?.enabled ? m.slot : undefined;
        if (mainstayKey)
          described.push(`local Mainstay service key ${mainstayKey.slice(0, 16)}…, slot ${mainstaySlot}`);
        // Trust on first use: the Mainstay key and slot recorded then are the ones every check uses; an SE that
        // later announces others is not followed silently.
        const before = await wallet.getConfig<SimulatorTrust>("trust.simulator");
        const slotChanged = before?.mainstaySlot !== undefined && before.mainstaySlot !== mainstaySlot;
        if (before?.mainstayKey && (before.mainstayKey !== mainstayKey || slotChanged))
          throw new lib.WalletError(
            "MAINSTAY_CHANGED",
            `the SE now announces ${mainstayKey ? `Mainstay key ${mainstayKey.slice(0, 16)}…, slot ${mainstaySlot}` : "no Mainstay service"}, but this wallet trusted key ${before.mainstayKey.slice(0, 16)}…, slot ${before.mainstaySlot} on ${new Date(before.trustedAt).toISOString()}: refused. If the operator really moved, run \`wallet trust-simulator --forget\`, then trust it again`,
            "precondition",
          );
        if (!v.confirm) {
          s.io.stderr(
            `${described.join("\n")}\nA simulator proves nothing about hardware: anyone with its files can sign as it. Run again with --confirm to trust it for this wallet.\n`,
          );
          return 2;
        }
        const trust: SimulatorTrust = {
          endpoint,
          rootPem: e.simulatorRootPem,
          releases: e.expectedPcrs,
          trustedAt: Date.now(),
          mainstayKey,
          mainstaySlot,
        };
        await wallet.setConfig("trust.simulator", trust);
        if (!(await wallet.getConfig<string>("se"))) await wallet.setConfig("se", endpoint);
        s.out(`trusted (SIMULATOR — no hardware guarantee):\n${described.join("\n")}`, {
          trusted: true,
          rootSha256: fingerprint,
          releases: e.expectedPcrs,
          mainstayKey,
          mainstaySlot,
        });
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } finally {
    await wallet.close();
  }
}

/** An SE that could not be reached: which one, and where its address came from. */
function unreachableText(e: SeError, source: string): string {
  const what = e.code === 4 ? "no answer in time from" : "cannot reach";
  return `${what} the SE at ${e.endpoint ?? "?"} (from ${source}): ${e.message}`;
}

function unreachableHint(endpoint: string): string {
  return [
    `  check it: \`se status --endpoint ${endpoint}\` (or \`npm start\` to run the simulator SE)`,
    "  another SE: --se <host:port>, or WALLET_SE=<host:port>",
  ].join("\n");
}

/** Runs the CLI with `argv` (without node and script); resolves with the exit status. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  const booleans = new Set([
    "json",
    "help",
    "new",
    "onchain",
    "wait",
    "no-wait",
    "confirm",
    "forget",
    "allow-unpublished",
    "one-at-a-time",
  ]);
  for (const name of [...GLOBAL_OPTIONS, ...Object.values(COMMAND_OPTIONS).flat()])
    options[name] = { type: booleans.has(name) ? "boolean" : "string" };
  options.help = { type: "boolean", short: "h" };
  options.version = { type: "boolean", short: "V" };
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true }));
  } catch (e) {
    // parseArgs takes "-5" for an option: say what it is instead.
    const negative = argv.find((a) => /^-\d/.test(a));
    io.stderr(
      negative
        ? `wallet: ${negative} is negative: amounts, counts and times are positive\n`
        : `wallet: ${(e as Error).message}\n(\`wallet --help\` lists the options)\n`,
    );
    return 2;
  }
  if (values.version) {
    io.stdout(`wallet ${VERSION}\n`);
    return 0;
  }
  let [command, ...args] = positionals;
  if (command === "help") {
    // `wallet help` is `wallet --help`; `wallet help <command>` is `wallet <command> --help`.
    if (args.length === 0) {
      io.stdout(HELP);
      return 0;
    }
    [command, ...args] = args;
    values.help = true;
  }
  if (!command) {
    io.stdout(HELP);
    return values.help ? 0 : 2;
  }
  if (!(command in COMMAND_OPTIONS)) {
    io.stderr(
      `wallet: unknown command "${command}"${didYouMean(command, [...Object.keys(COMMAND_OPTIONS), "help"])}\n(\`wallet --help\` lists the commands)\n`,
    );
    return 2;
  }
  if (values.help) {
    io.stdout(`${commandHelp(command)}\n\n(\`wallet --help\` lists the options every command takes)\n`);
    return 0;
  }
  const allowed = new Set([...GLOBAL_OPTIONS, ...COMMAND_OPTIONS[command]!]);
  const stray = Object.keys(values).find((k) => !allowed.has(k));
  const want = command === "deposit" && values.rebroadcast !== undefined ? [] : (POSITIONALS[command] ?? []);
  const problem = stray
    ? `--${stray} does not apply to ${command}`
    : args.length !== want.length
      ? `${command} takes ${want.length ? want.map((w) => `<${w}>`).join(" ") : "no arguments"}`
      : undefined;
  if (problem) {
    io.stderr(`wallet: ${problem}\n\n${commandHelp(command)}\n`);
    return 2;
  }
  lib ??= await loadLib();
  const s = new Session(io, values);
  let stopListening: (() => void) | undefined;
  const interrupted = new Promise<"interrupted">((resolve) => {
    stopListening = io.onInterrupt?.(() => resolve("interrupted"));
  });
  let wasInterrupted = false;
  try {
    const r = await Promise.race([run(s, command, args), interrupted]);
    if (r !== "interrupted") return r;
    // The wallet file is written step by step, each step durable before the next goes out: stopping here leaves
    // the state the last step reached, which the line names (and the command that goes on from it).
    wasInterrupted = true;
    s.progress.end();
    const message = interruptedText(command, args, s.last, s.walletFile());
    if (s.json) io.stdout(`${toJson({ ok: false, error: { code: "INTERRUPTED", message } })}\n`);
    io.stderr(`wallet: interrupted ${message}\n`);
    return 130;
  } catch (e) {
    s.progress.end();
    if (e instanceof PromptCancelled) {
      io.stderr("wallet: cancelled\n");
      return 130;
    }
    const code = e instanceof UsageError ? 2 : e instanceof ProtocolError && USAGE_CODES.has(e.code) ? 2 : 1;
    const errCode =
      e instanceof ProtocolError
        ? e.code
        : e instanceof lib.SeError
          ? `SE_${e.codeName}`
          : e instanceof ChainError
            ? `CHAIN_${e.code}`
            : e instanceof UsageError
              ? "USAGE"
              : "ERROR";
    const message =
      e instanceof lib.SeError && e.unreachable
        ? unreachableText(e, s.endpointSource)
        : e instanceof Error
          ? e.message
          : String(e);
    if (s.json) io.stdout(`${toJson({ ok: false, error: { code: errCode, message } })}\n`);
    io.stderr(`wallet: ${message}${errCode !== "USAGE" && errCode !== "ERROR" ? ` [${errCode}]` : ""}\n`);
    if (e instanceof lib.SeError && e.unreachable && e.endpoint)
      io.stderr(`${unreachableHint(e.endpoint)}\n`);
    if (e instanceof ChainError && e.code === "unavailable" && s.simulatorChain)
      io.stderr(
        `  the simulator's chain (data dir ${s.simulatorChain.dir}, ${s.simulatorChain.from === "the default" ? "the default" : `from ${s.simulatorChain.from}`}) runs with the SE (\`npm start\`), or on its own: \`npx se start --chain-only\` (the SE gone: \`wallet exit <coin>\` needs only the chain)\n`,
      );
    if (errCode === "ERROR" && e instanceof Error && io.env.WALLET_DEBUG) io.stderr(`${e.stack}\n`);
    return code;
  } finally {
    stopListening?.();
    // Interrupted, the command is still running: its connections close with the process (bin/wallet.js exits).
    if (!wasInterrupted) await s.close();
  }
}

/**
 * What an interrupted command leaves, in one line: from the command and its last progress event. The wallet
 * records each step before the next goes out, so the step reached is what stays (and the command resumes it).
 */
export function interruptedText(
  command: string,
  args: string[],
  last: { event: string; detail: Record<string, unknown> } | undefined,
  file: string,
): string {
  const event = last?.event;
  const coin = args[0] ?? "<coin>";
  const nothing = "before anything went to the SE or the network: nothing changed there";
  switch (command) {
    case "create":
    case "restore":
      return `while making ${file}: its mnemonic was not shown, so delete the file and run \`wallet ${command}\` again`;
    case "faucet":
      return event === "mining"
        ? "while mining regtest blocks to the wallet: the blocks mined so far stay; `wallet info` shows the balance"
        : nothing;
    case "deposit":
      if (event === "deposited" || event === "confirmations")
        return "while waiting for confirmations: the deposit is broadcast; `wallet coins` shows it";
      if (event === "broadcast")
        return "while broadcasting the deposit's funding transaction: `wallet coins` shows the coin; `wallet deposit --rebroadcast <coin>` sends the funding again if it did not go out";
      if (event === undefined) return nothing;
      return "during the deposit's key generation with the SE: no bitcoin moved (the SE forgets a deposit that is never funded); `wallet deposit <amount>` starts again";
    case "send":
      if (event === "transfer-send")
        return `while handing the transfer message to the SE: \`wallet coins\` shows coin ${coin} as being sent; \`wallet send ${coin} ${args[1] ?? "<address>"}\` again finishes it`;
      if (event === "transfer-init" || event === "backup")
        return `while handing coin ${coin} over: the receiver is recorded, nothing is final yet; \`wallet send ${coin} ${args[1] ?? "<address>"}\` finishes it`;
      return nothing;
    case "withdraw":
      if (event === "broadcast" || event === "confirmations")
        return `while waiting for confirmations: the withdrawal is signed and broadcast; \`wallet coins\` shows coin ${coin} as withdrawing, \`wallet withdraw ${coin} ${args[1] ?? "<address>"}\` waits for it again`;
      if (event === "withdraw-init" || event === "cosign")
        return `while co-signing the withdrawal: nothing is broadcast; \`wallet withdraw ${coin} ${args[1] ?? "<address>"}\` resumes it`;
      return nothing;
    case "exit":
      if (event === "wait-blocks")
        return `while waiting for the backup's lock: nothing is broadcast; \`wallet exit ${coin}\` continues`;
      if (event === "broadcast" || event === "confirmations")
        return `while waiting for the ${String(last?.detail.tx ?? "backup")} to confirm: it is broadcast; \`wallet exit ${coin}\` continues, \`wallet coins\` shows it`;
      return nothing;
    case "receive":
      if (event === "checking")
        return `while checking incoming coin ${String(last?.detail.statechainId)}: \`wallet receive\` takes it up again (a key update already sent is finished then)`;
      return "while reading the mailboxes: nothing was received";
    default:
      return "nothing changed";
  }
}
