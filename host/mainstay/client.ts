// HTTP client for a Mainstay service (mainstay.xyz, or the local service in simulator mode). API shapes from
// commerceblock/mainstay-mvc: every answer is HTTP 200 with {"response": …} or {"error": "<message>"}, plus
// timestamp and allowance. Commitments are sent as POST /api/v1/commitment/send {commitment, position, token}.
// Timeouts, retries with exponential backoff and jitter, and typed errors, so the publisher can tell "down,
// try later" from "refused, fix the configuration".
import { randomInt } from "node:crypto";
import {
  commitmentHexForRoot,
  fromDisplayHex,
  parseSlotProofJson,
  type SlotProof,
  toDisplayHex,
} from "../../protocol/mainstay.ts";

export type MainstayErrorCode =
  | "unavailable" // network error, timeout, 5xx: retried, and the publisher tries again later
  | "rejected" // the service answered with an error (bad token, unknown position…): not retried
  | "bad-response"; // not the API's JSON shape

export class MainstayError extends Error {
  override name = "MainstayError";
  constructor(
    readonly code: MainstayErrorCode,
    message: string,
    /** The service's own error text, when it sent one. */
    readonly serviceError?: string,
  ) {
    super(message);
  }
}

export interface MainstayClientOptions {
  /** Service root, e.g. "https://mainstay.xyz" (a trailing "/api/v1" is accepted too). */
  url: string;
  position: number;
  token: string;
  /** Per attempt. */
  timeoutMs?: number;
  /** Attempts after the first when the service is unavailable. */
  retries?: number;
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Largest response body accepted. */
  maxResponseBytes?: number;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
}

/** A slot proof with the attestation that carries it. */
export interface AttestedSlotProof {
  proof: SlotProof & { position: number };
  /** Attestation txid, internal byte order. */
  txid: Uint8Array;
  confirmed: boolean;
}

/** What the publisher needs from a Mainstay service (the client below, or a test double). */
export interface MainstayApi {
  readonly position: number;
  send(commitment: Uint8Array): Promise<void>;
  commitmentProof(commitment: Uint8Array): Promise<AttestedSlotProof | undefined>;
}

// Answers that mean "not attested yet" rather than a failure (mainstay-mvc constants and literals).
const NOT_YET = [
  /^not found$/i,
  /^pending$/i,
  /awa[i]?ting first attestation/i,
  /commitment or position is unknown/i,
];
// mainstay-mvc answers its own internal failures with this message: treat it like a 5xx.
const INTERNAL = /an error occurred in the API/i;

/** Exponential backoff with ±50 % jitter (so many clients do not retry in step). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(ceiling / 2 + randomInt(Math.max(1, Math.floor(ceiling / 2) + 1)));
}

export class MainstayClient implements MainstayApi {
  readonly position: number;
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly opts: MainstayClientOptions) {
    if (!Number.isInteger(opts.position) || opts.position < 0)
      throw new Error(`bad Mainstay position ${opts.position}`);
    this.position = opts.position;
    this.base = `${opts.url.replace(/\/+$/, "").replace(/\/api\/v1$/, "")}/api/v1`;
    this.fetchFn = opts.fetch ?? fetch;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** One attempt: the `response` field, or a MainstayError. */
  private async once(path: string, init: RequestInit): Promise<unknown> {
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    let res: Response;
    try {
      res = await this.fetchFn(`${this.base}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const e = err as Error;
      const why =
        e.name === "TimeoutError"
          ? `no answer within ${timeoutMs} ms`
          : (e.cause as Error)?.message || e.message;
      throw new MainstayError("unavailable", `Mainstay service at ${this.base} is unreachable: ${why}`);
    }
    const text = await this.readBody(res);
    if (res.status >= 500 || res.status === 429)
      throw new MainstayError("unavailable", `Mainstay service answered HTTP ${res.status} to ${path}`);
    let body: { response?: unknown; error?: unknown };
    try {
      body = JSON.parse(text);
    } catch {
      throw new MainstayError(
        "bad-response",
        `Mainstay answered ${path} (HTTP ${res.status}) with something not JSON`,
      );
    }
    if (typeof body !== "object" || body === null)
      throw new MainstayError("bad-response", `Mainstay answered ${path} with a JSON ${typeof body}`);
    if (typeof body.error === "string") {
      if (INTERNAL.test(body.error))
        throw new MainstayError("unavailable", `Mainstay reported an internal error for ${path}`);
      throw new MainstayError("rejected", `Mainstay refused ${path}: ${body.error}`, body.error);
    }
    if (res.status >= 400)
      throw new MainstayError("rejected", `Mainstay answered HTTP ${res.status} to ${path}`);
    if (!("response" in body))
      throw new MainstayError("bad-response", `Mainstay answer to ${path} has no "response"`);
    return body.response;
  }

  private async readBody(res: Response): Promise<string> {
    const limit = this.opts.maxResponseBytes ?? 1 << 20;
    const declared = Number(res.headers.get("content-length") ?? "0");
    if (declared > limit) {
      await res.body?.cancel();
      throw new MainstayError("bad-response", `Mainstay response of ${declared} bytes exceeds ${limit}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new MainstayError("unavailable", `Mainstay response was cut off: ${(err as Error).message}`);
    }
    if (text.length > limit)
      throw new MainstayError("bad-response", `Mainstay response exceeds ${limit} bytes`);
    return text;
  }

  /** Retries while the service is unavailable, backing off; other errors surface at once. */
  private async call(path: string, init: RequestInit = {}): Promise<unknown> {
    const retries = this.opts.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once(path, init);
      } catch (err) {
        if (!(err instanceof MainstayError) || err.code !== "unavailable" || attempt >= retries) throw err;
        await this.sleep(backoffDelay(attempt, this.opts.backoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000));
      }
    }
  }

  /** Commits `commitment` (internal bytes: our SMT root) to our slot. */
  async send(commitment: Uint8Array): Promise<void> {
    await this.call("/commitment/send", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        commitment: commitmentHexForRoot(commitment),
        position: this.position,
        token: this.opts.token,
      }),
    });
  }

  /** GET /commitment/commitment: the slot proof and attestation of `commitment`, or undefined if not attested. */
  async commitmentProof(commitment: Uint8Array): Promise<AttestedSlotProof | undefined> {
    const path = `/commitment/commitment?commitment=${toDisplayHex(commitment)}`;
    const r = await this.callOrNotYet(path);
    if (r === undefined) return undefined;
    const o = r as { attestation?: { txid?: unknown; confirmed?: unknown }; merkleproof?: unknown };
    if (typeof o !== "object" || o === null || typeof o.attestation !== "object" || o.attestation === null)
      throw new MainstayError("bad-response", `Mainstay answer to ${path} lacks "attestation"`);
    const proof = this.withPosition(this.parse(o.merkleproof, path), path);
    let txid: Uint8Array;
    try {
      txid = fromDisplayHex(o.attestation.txid, "attestation txid");
    } catch (err) {
      throw new MainstayError("bad-response", `Mainstay answer to ${path}: ${(err as Error).message}`);
    }
    return { proof: { ...proof, txid }, txid, confirmed: o.attestation.confirmed === true };
  }

  /** GET /commitment/latestproof: the proof of our slot in the latest confirmed attestation. */
  async latestProof(): Promise<AttestedSlotProof | undefined> {
    const path = `/commitment/latestproof?position=${this.position}`;
    const r = await this.callOrNotYet(path);
    if (r === undefined) return undefined;
    const proof = this.parse(r, path);
    if (!proof.txid) throw new MainstayError("bad-response", `Mainstay answer to ${path} lacks "txid"`);
    return { proof: { ...proof, position: this.position }, txid: proof.txid, confirmed: true };
  }

  private async callOrNotYet(path: string): Promise<unknown> {
    try {
      return await this.call(path);
    } catch (err) {
      const said =
        err instanceof MainstayError && err.code === "rejected" ? (err.serviceError ?? "") : undefined;
      if (said !== undefined && NOT_YET.some((re) => re.test(said))) return undefined;
      throw err;
    }
  }

  private parse(json: unknown, path: string): SlotProof {
    try {
      return parseSlotProofJson(json);
    } catch (err) {
      throw new MainstayError("bad-response", `Mainstay answer to ${path}: ${(err as Error).message}`);
    }
  }

  private withPosition(proof: SlotProof, path: string): SlotProof & { position: number } {
    if (proof.position === undefined)
      throw new MainstayError("bad-response", `Mainstay answer to ${path} lacks the slot position`);
    return { ...proof, position: proof.position };
  }
}
