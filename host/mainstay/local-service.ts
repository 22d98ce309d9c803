// A Mainstay-compatible service for simulator mode: the public API's routes and JSON shapes (mainstay-mvc) on
// loopback, attesting to the embedded regtest chain by the real service's rules (protocol/mainstay.ts):
//   - every attestation commits the slot-tree root over the latest commitment of positions 0..max (zeros for
//     an empty position), double SHA-256, Bitcoin-style padding;
//   - the attestation transaction has one output, P2WPKH of the service key tweaked by that root (16 BIP32
//     non-hardened steps), and spends the previous attestation's output: the staychain;
//   - the first attestation spends a coinbase the service mined to its own (untweaked) key; its txid is the
//     staychain base.
// A new attestation is made (by attest(), or on a timer) only when the slot-tree root changed and the previous
// attestation has confirmed, as the real service waits for confirmation before extending the staychain.
// State lives in memory and, given a state file, also on disk (rewritten after every commitment and attestation),
// so a simulator restarted on its persistent chain serves the staychain and proofs it served before.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { script as bscript, Transaction } from "bitcoinjs-lib";
import type { DevChain } from "../../chain/backend.ts";
import { concatBytes } from "../../protocol/encoding.ts";
import {
  attestationPrivkey,
  attestationScript,
  fromDisplayHex,
  hash160,
  type MainstayKeyParams,
  p2wpkhScript,
  slotProofToJson,
  slotTreeProof,
  slotTreeRoot,
  toDisplayHex,
} from "../../protocol/mainstay.ts";
import { type Rng, systemRng } from "../../protocol/rng.ts";

export interface LocalMainstayOptions {
  chain: DevChain;
  /** Slots and the token each accepts (the "auth_token" of mainstay-mvc's client details). */
  slots: ReadonlyArray<{ position: number; token: string }>;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Service key; drawn from `rng` when absent. */
  key?: { privateKey: Uint8Array; chainCode: Uint8Array };
  rng?: Rng;
  /** Fee of each attestation transaction. */
  feeSat?: bigint;
  /** Attest on this interval (0: only when attest() is called). */
  attestIntervalMs?: number;
  now?: () => number;
  onError?: (err: Error) => void;
  /**
   * Keep the commitments, attestations and staychain tip in this JSON file, and resume from it at start. The
   * attestation transactions it names must be on `chain` (one missing from the mempool is broadcast again);
   * otherwise start refuses: the file belongs to another chain.
   */
  stateFile?: string;
}

/** The service key of a local Mainstay in `file` (0600), made from `rng` the first time. */
export function loadOrCreateMainstayKey(
  file: string,
  rng: Rng = systemRng,
): { privateKey: Uint8Array; chainCode: Uint8Array } {
  try {
    const j = JSON.parse(readFileSync(file, "utf8")) as { privateKey: string; chainCode: string };
    const key = { privateKey: Buffer.from(j.privateKey, "hex"), chainCode: Buffer.from(j.chainCode, "hex") };
    if (key.privateKey.length !== 32 || key.chainCode.length !== 32) throw new Error("wrong key lengths");
    return { privateKey: new Uint8Array(key.privateKey), chainCode: new Uint8Array(key.chainCode) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw new Error(`cannot read the local Mainstay key ${file}: ${(err as Error).message}`);
  }
  const key = { privateKey: secp256k1.utils.randomSecretKey(rng(48)), chainCode: rng(32) };
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(
    file,
    `${JSON.stringify({ privateKey: Buffer.from(key.privateKey).toString("hex"), chainCode: Buffer.from(key.chainCode).toString("hex") })}\n`,
    { mode: 0o600, flag: "wx" },
  );
  return key;
}

interface StateJson {
  version: 1;
  commitments: Array<[number, string]>;
  attestations: Array<{
    txid: string;
    raw: string;
    merkleRoot: string;
    leaves: string[];
    filled: boolean[];
    insertedAt: number;
  }>;
  tip?: { txid: string; vout: number; value: string };
}

interface Attestation {
  txid: Uint8Array; // internal order
  /** The signed attestation transaction (to broadcast it again when a restarted chain lost its mempool). */
  raw: Uint8Array;
  merkleRoot: Uint8Array;
  leaves: Uint8Array[];
  /** Positions that held a commitment (the others are zero padding). */
  filled: boolean[];
  insertedAt: number;
}

interface StaychainTip {
  txid: Uint8Array;
  vout: number;
  value: bigint;
  privateKey: Uint8Array;
}

const COINBASE_MATURITY = 100;
const MAX_BODY = 64 * 1024;
const ZERO = new Uint8Array(32);

class ApiError extends Error {}

export class LocalMainstay {
  readonly params: MainstayKeyParams;
  private readonly commitments = new Map<number, Uint8Array>();
  private readonly attestations: Attestation[] = [];
  private tip: StaychainTip | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attesting: Promise<unknown> = Promise.resolve();
  private baseTxid: Uint8Array | undefined;

  private constructor(
    private readonly opts: LocalMainstayOptions,
    private readonly server: Server,
    readonly url: string,
    private readonly key: { privateKey: Uint8Array; chainCode: Uint8Array },
  ) {
    this.params = { basePubkey: secp256k1.getPublicKey(key.privateKey, true), chainCode: key.chainCode };
  }

  static async start(opts: LocalMainstayOptions): Promise<LocalMainstay> {
    const rng = opts.rng ?? systemRng;
    const key = opts.key ?? { privateKey: secp256k1.utils.randomSecretKey(rng(48)), chainCode: rng(32) };
    const host = opts.host ?? "127.0.0.1";
    let self: LocalMainstay | undefined;
    const server = createServer((req, res) => {
      void self!.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port ?? 0, host, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    self = new LocalMainstay(opts, server, `http://${host}:${port}`, key);
    if (opts.stateFile) {
      try {
        await self.resume(opts.stateFile);
      } catch (err) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        throw err;
      }
    }
    const every = opts.attestIntervalMs ?? 0;
    if (every > 0) {
      self.timer = setInterval(() => {
        self!.attest().catch((err: Error) => opts.onError?.(err));
      }, every);
      self.timer.unref();
    }
    return self;
  }

  /** Attestations made so far (this run and, with a state file, before). */
  get attestationCount(): number {
    return this.attestations.length;
  }

  private async resume(file: string): Promise<void> {
    let j: StateJson;
    try {
      j = JSON.parse(readFileSync(file, "utf8")) as StateJson;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new Error(`cannot read the local Mainstay state ${file}: ${(err as Error).message}`);
    }
    if (j.version !== 1) throw new Error(`${file}: unknown local Mainstay state version ${j.version}`);
    const b = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
    for (const [position, c] of j.commitments) this.commitments.set(position, b(c));
    for (const a of j.attestations) {
      const txid = b(a.txid);
      if (!(await this.opts.chain.getTx(toDisplayHex(txid)))) {
        // Made just before the last stop and never mined: the restarted node's mempool may not have kept it.
        try {
          await this.opts.chain.broadcast(b(a.raw));
        } catch (err) {
          throw new Error(
            `the local Mainstay state ${file} names attestation ${toDisplayHex(txid)}, which this chain does not have and refuses (${(err as Error).message}): the state belongs to another chain (start with --fresh for a clean simulator)`,
          );
        }
      }
      this.attestations.push({
        txid,
        raw: b(a.raw),
        merkleRoot: b(a.merkleRoot),
        leaves: a.leaves.map(b),
        filled: a.filled,
        insertedAt: a.insertedAt,
      });
    }
    const last = this.attestations[this.attestations.length - 1];
    if (j.tip && last)
      this.tip = {
        txid: b(j.tip.txid),
        vout: j.tip.vout,
        value: BigInt(j.tip.value),
        privateKey: attestationPrivkey(last.merkleRoot, this.key.privateKey, this.key.chainCode),
      };
    this.baseTxid = this.attestations[0]?.txid;
  }

  /** Rewrites the state file (write, then rename: a crash leaves the old state or the new one). */
  private save(): void {
    const file = this.opts.stateFile;
    if (!file) return;
    const h = (x: Uint8Array) => Buffer.from(x).toString("hex");
    const j: StateJson = {
      version: 1,
      commitments: [...this.commitments].map(([p, c]) => [p, h(c)]),
      attestations: this.attestations.map((a) => ({
        txid: h(a.txid),
        raw: h(a.raw),
        merkleRoot: h(a.merkleRoot),
        leaves: a.leaves.map(h),
        filled: a.filled,
        insertedAt: a.insertedAt,
      })),
      ...(this.tip
        ? { tip: { txid: h(this.tip.txid), vout: this.tip.vout, value: String(this.tip.value) } }
        : {}),
    };
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(`${file}.tmp`, `${JSON.stringify(j)}\n`, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  /** The staychain's first attestation (display hex), once there is one. */
  get staychainBase(): string | undefined {
    return this.baseTxid && toDisplayHex(this.baseTxid);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.attesting.catch(() => undefined);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- attesting -----------------------------------------------------------------------------------------

  /** Makes an attestation if there is something new to attest; resolves with its txid (display hex). */
  attest(): Promise<string | undefined> {
    const run = this.attesting.then(() => this.attestNow());
    this.attesting = run.catch(() => undefined);
    return run;
  }

  private leaves(): Uint8Array[] {
    const max = Math.max(...this.commitments.keys());
    return Array.from({ length: max + 1 }, (_, i) => this.commitments.get(i) ?? ZERO);
  }

  private async attestNow(): Promise<string | undefined> {
    if (this.commitments.size === 0) return undefined;
    const leaves = this.leaves();
    const root = slotTreeRoot(leaves);
    const last = this.attestations[this.attestations.length - 1];
    if (last) {
      if (Buffer.compare(Buffer.from(last.merkleRoot), Buffer.from(root)) === 0) return undefined;
      const status = await this.opts.chain.getTxStatus(toDisplayHex(last.txid));
      if (!status || status.confirmations < 1) return undefined; // extend the staychain from confirmed tips only
    }
    const tip = this.tip ?? (await this.fund());
    const fee = this.opts.feeSat ?? 1_000n;
    if (tip.value <= fee + 1_000n)
      throw new Error("local Mainstay staychain output is too small to pay the fee");
    const tx = new Transaction();
    tx.version = 2;
    tx.addInput(tip.txid, tip.vout, 0xfffffffd);
    tx.addOutput(attestationScript(root, this.params), tip.value - fee);
    const pub = secp256k1.getPublicKey(tip.privateKey, true);
    // BIP143 script code of a P2WPKH input: the P2PKH script of the key hash.
    const scriptCode = concatBytes(Uint8Array.of(0x76, 0xa9, 0x14), hash160(pub), Uint8Array.of(0x88, 0xac));
    const digest = tx.hashForWitnessV0(0, scriptCode, tip.value, Transaction.SIGHASH_ALL);
    const sig = secp256k1.sign(digest, tip.privateKey, { prehash: false, lowS: true });
    tx.setWitness(0, [bscript.signature.encode(sig, Transaction.SIGHASH_ALL), pub]);
    const raw = new Uint8Array(tx.toBuffer());
    const txidHex = await this.opts.chain.broadcast(raw);
    const txid = fromDisplayHex(txidHex, "attestation txid");
    this.tip = {
      txid,
      vout: 0,
      value: tip.value - fee,
      privateKey: attestationPrivkey(root, this.key.privateKey, this.key.chainCode),
    };
    this.baseTxid ??= txid;
    const filled = leaves.map((_, i) => this.commitments.has(i));
    this.attestations.push({
      txid,
      raw,
      merkleRoot: root,
      leaves,
      filled,
      insertedAt: (this.opts.now ?? Date.now)(),
    });
    this.save();
    return txidHex;
  }

  /** Mines a coinbase to the service key and matures it: the staychain's first input. */
  private async fund(): Promise<StaychainTip> {
    const script = p2wpkhScript(this.params.basePubkey);
    const mature = async () =>
      (await this.opts.chain.findUtxos(script)).find(
        (u) => !u.coinbase || u.confirmations >= COINBASE_MATURITY,
      );
    let utxo = await mature();
    if (!utxo) {
      await this.opts.chain.mine(1, script);
      await this.opts.chain.mine(COINBASE_MATURITY);
      utxo = await mature();
    }
    if (!utxo) throw new Error("local Mainstay could not fund its staychain from a coinbase");
    return {
      txid: fromDisplayHex(utxo.txid, "funding txid"),
      vout: utxo.vout,
      value: utxo.valueSat,
      privateKey: this.key.privateKey,
    };
  }

  // --- HTTP API --------------------------------------------------------------------------------------------

  private async confirmed(a: Attestation): Promise<boolean> {
    const s = await this.opts.chain.getTxStatus(toDisplayHex(a.txid));
    return Boolean(s && s.confirmations >= 1);
  }

  private async latestConfirmed(): Promise<Attestation | undefined> {
    for (let i = this.attestations.length - 1; i >= 0; i--) {
      const a = this.attestations[i]!;
      if (await this.confirmed(a)) return a;
    }
    return undefined;
  }

  private proofJson(a: Attestation, position: number) {
    return slotProofToJson({
      commitment: a.leaves[position]!,
      merkleRoot: a.merkleRoot,
      ops: slotTreeProof(a.leaves, position),
    });
  }

  private static hashArg(q: URLSearchParams, name: string): Uint8Array {
    const v = q.get(name);
    if (v === null) throw new ApiError(`missing ${name} parameter`);
    if (v.length !== 64) throw new ApiError(`${name} string parameter must contain 64 characters`);
    try {
      return fromDisplayHex(v, name);
    } catch {
      throw new ApiError(`${name} is not a valid hex string`);
    }
  }

  private static positionArg(q: URLSearchParams): number {
    const v = q.get("position");
    if (v === null) throw new ApiError("missing position parameter");
    const p = Number.parseInt(v, 10);
    if (Number.isNaN(p)) throw new ApiError("position expects a int");
    return p;
  }

  private inTree(a: Attestation, position: number): boolean {
    return a.filled[position] === true;
  }

  private async get(route: string, q: URLSearchParams): Promise<unknown> {
    switch (route) {
      case "":
        return "Mainstay-API-v1";
      case "/latestattestation": {
        const a = await this.latestConfirmed();
        return a ? { merkle_root: toDisplayHex(a.merkleRoot), txid: toDisplayHex(a.txid) } : {};
      }
      case "/latestcommitment":
      case "/commitment/latestproof": {
        const position = LocalMainstay.positionArg(q);
        if (!this.opts.slots.some((s) => s.position === position))
          throw new ApiError("your position is unknown to us");
        const a = await this.latestConfirmed();
        if (!a || !this.inTree(a, position)) throw new ApiError("Slot allocated: awating first attestation");
        const proof = this.proofJson(a, position);
        if (route === "/latestcommitment")
          return { commitment: proof.commitment, merkle_root: proof.merkle_root, txid: toDisplayHex(a.txid) };
        return { txid: toDisplayHex(a.txid), ...proof };
      }
      case "/commitment/proof":
      case "/attestation/proof": {
        const position = LocalMainstay.positionArg(q);
        const a =
          route === "/commitment/proof"
            ? this.attestations.find((x) => sameHash(x.merkleRoot, LocalMainstay.hashArg(q, "merkle_root")))
            : this.attestations.find((x) => sameHash(x.txid, LocalMainstay.hashArg(q, "txid")));
        if (!a)
          throw new ApiError(
            route === "/commitment/proof"
              ? "your merkle root is unknown to us"
              : "attestation could not be found for the txid provided",
          );
        if (!this.inTree(a, position)) throw new ApiError("your commitment or position is unknown to us");
        return route === "/attestation/proof"
          ? { txid: toDisplayHex(a.txid), ...this.proofJson(a, position) }
          : this.proofJson(a, position);
      }
      case "/commitment/commitment": {
        const c = LocalMainstay.hashArg(q, "commitment");
        // The earliest attestation holding the commitment, as mainstay-mvc answers.
        for (const a of this.attestations) {
          const position = a.leaves.findIndex((l, i) => a.filled[i] && sameHash(l, c));
          if (position < 0) continue;
          return {
            attestation: {
              merkle_root: toDisplayHex(a.merkleRoot),
              txid: toDisplayHex(a.txid),
              confirmed: await this.confirmed(a),
              inserted_at: new Date(a.insertedAt).toISOString(),
            },
            merkleproof: { position, ...this.proofJson(a, position) },
          };
        }
        throw new ApiError("Not found");
      }
      default:
        return undefined;
    }
  }

  private send(body: unknown): string {
    const b = body as { commitment?: unknown; position?: unknown; token?: unknown } | null;
    if (typeof b !== "object" || b === null) throw new ApiError("missing X-MAINSTAY-PAYLOAD");
    if (b.commitment === undefined) throw new ApiError("missing commitment parameter in payload");
    if (b.position === undefined) throw new ApiError("missing position parameter in payload");
    if (b.token === undefined) throw new ApiError("missing token parameter in payload");
    if (typeof b.commitment !== "string" || !/^[0-9A-Fa-f]{64}$/.test(b.commitment))
      throw new ApiError("commitment is not a valid hex string");
    const position = Number(b.position);
    const slot = this.opts.slots.find((s) => s.position === position);
    if (!slot) throw new ApiError("your position is unknown to us");
    if (slot.token !== b.token) throw new ApiError("your token is wrong");
    this.commitments.set(position, fromDisplayHex(b.commitment, "commitment"));
    this.save();
    return "Commitment added";
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const reply = (status: number, payload: Record<string, unknown>) => {
      const cost = Number(process.hrtime.bigint() - started);
      const text = JSON.stringify({
        ...payload,
        timestamp: (this.opts.now ?? Date.now)(),
        allowance: { cost },
      });
      res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(text);
    };
    try {
      const url = new URL(req.url ?? "/", "http://local");
      if (!url.pathname.startsWith("/api/v1")) return reply(404, { error: "not found" });
      const route = url.pathname.slice("/api/v1".length).replace(/\/+$/, "");
      if (req.method === "POST" && route === "/commitment/send") {
        const raw = await readBody(req);
        let body: unknown;
        try {
          body = JSON.parse(raw);
        } catch {
          throw new ApiError("X-MAINSTAY-PAYLOAD not in base64 format");
        }
        return reply(200, { response: this.send(body) });
      }
      if (req.method !== "GET") return reply(404, { error: "not found" });
      const response = await this.get(route, url.searchParams);
      if (response === undefined) return reply(404, { error: "not found" });
      return reply(200, { response });
    } catch (err) {
      if (err instanceof ApiError) return reply(200, { error: err.message });
      this.opts.onError?.(err as Error);
      return reply(200, { error: "an error occurred in the API" });
    }
  }
}

function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new ApiError("request body too large"));
        req.destroy();
        return;
      }
      parts.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}
