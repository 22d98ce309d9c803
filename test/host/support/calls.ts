// Calls on the public API the way an attacker or a confused client makes them: requests signed with chosen keys,
// nonces and clocks, raw bytes that are not protobuf at all, and a client that lets a test act before and after
// every call an owner flow makes (probe the current state, kill the host, replay the exact request).
import assert from "node:assert/strict";
import { type ChannelCredentials, Client, credentials, type ServiceError } from "@grpc/grpc-js";
import { type MethodName, SeClient, SeError } from "../../../client/se-client.ts";
import { StatechainServiceService } from "../../../proto/gen/statechain.ts";
import { type Authenticated, type Codec, signRequest } from "../../../protocol/auth.ts";
import { systemRng } from "../../../protocol/rng.ts";

type Service = typeof StatechainServiceService;
export type Req<M extends MethodName> = Parameters<Service[M]["requestSerialize"]>[0];
export type Res<M extends MethodName> = ReturnType<Service[M]["responseDeserialize"]>;

export const METHODS = Object.keys(StatechainServiceService) as MethodName[];
/** The public methods of one transfer, in protocol order. */
export const TRANSFER_STEPS: readonly MethodName[] = [
  "transferSenderInit",
  "signFirst",
  "signSecond",
  "signComplete",
  "transferSend",
  "mailboxGet",
  "transferReceiverInit",
  "transferReceiverKeyUpdate",
];

export function encodeRequest<M extends MethodName>(method: M, req: Req<M>): Buffer {
  return StatechainServiceService[method].requestSerialize(req as never);
}

export function encodeResponse<M extends MethodName>(method: M, res: Res<M>): Buffer {
  return StatechainServiceService[method].responseSerialize(res as never);
}

export interface SignOptions {
  /** The auth nonce (default 32 fresh bytes). */
  nonce?: Uint8Array;
  nowMs?: number;
  /** Sign for another method path (a request signed for one method replayed on another). */
  path?: string;
}

/** `req` with `auth` filled in by `secret`, as the wallet would, with the options' nonce, clock and method. */
export function signAs<M extends MethodName>(
  method: M,
  req: Req<M>,
  secret: Uint8Array,
  opts: SignOptions = {},
): Req<M> {
  const def = StatechainServiceService[method];
  type Signed = Req<M> & Authenticated;
  const codec: Codec<Signed> = {
    encode: (m) => ({ finish: () => def.requestSerialize(m as never) }),
    decode: (b) => def.requestDeserialize(Buffer.from(b)) as Signed,
  };
  let first = true;
  const rng = (n: number) => {
    if (first && opts.nonce) {
      first = false;
      return new Uint8Array(opts.nonce);
    }
    first = false;
    return systemRng(n);
  };
  return signRequest(codec, opts.path ?? def.path, req as Signed, secret, {
    nowMs: opts.nowMs ?? Date.now(),
    rng,
  });
}

/** Asserts that `p` is refused with gRPC status `code` (and a message matching `message`, when given). */
export async function refused(p: Promise<unknown>, code: number, message?: RegExp): Promise<SeError> {
  try {
    await p;
  } catch (err) {
    const e = err as SeError | ServiceError;
    const got = e.code;
    const text = e instanceof SeError ? e.message : (e as ServiceError).details;
    assert.equal(got, code, `expected status ${code}, got ${got}: ${text}`);
    if (message) assert.match(text, message);
    return e as SeError;
  }
  assert.fail(`expected a refusal with status ${code}, but the call succeeded`);
}

/** A channel that sends arbitrary bytes as the request of a method (no protobuf encoding on our side). */
export function rawClient(endpoint: string, creds: ChannelCredentials = credentials.createInsecure()) {
  const client = new Client(endpoint, creds, { "grpc.max_send_message_length": 64 << 20 });
  const id = (b: Buffer) => b;
  return {
    call: (method: MethodName, bytes: Buffer): Promise<Buffer> =>
      new Promise<Buffer>((resolve, reject) => {
        client.makeUnaryRequest(
          StatechainServiceService[method].path,
          id,
          id,
          bytes,
          { deadline: Date.now() + 20_000 },
          (err, res) => (err ? reject(err) : resolve(res!)),
        );
      }),
    close: () => client.close(),
  };
}

/** One request of arbitrary bytes on a channel of its own. */
export async function rawCall(endpoint: string, method: MethodName, bytes: Buffer): Promise<Buffer> {
  const c = rawClient(endpoint);
  try {
    return await c.call(method, bytes);
  } finally {
    c.close();
  }
}

export interface Step<M extends MethodName = MethodName> {
  method: M;
  /** How many times this method has been called through this client, this call included. */
  occurrence: number;
  /** The request as the flow built it, unsigned. */
  request: Req<M>;
  /** The proof key secret the flow signs with, if any. */
  signer?: Uint8Array;
  /** The exact request sent (signed when `signer` is set). */
  sent: Req<M>;
}

export type Around = (step: Step, send: () => Promise<unknown>) => Promise<unknown>;

/**
 * An SeClient for the owner flows of client/owner.ts that signs each request itself (so the test holds the exact
 * bytes sent) and runs `around` for every call: the test may probe the SE before the call, send it, kill the
 * host, replay the request, and must return the response the flow continues with. `retarget` points it at a
 * restarted host.
 */
export class SteppingClient extends SeClient {
  private inner: SeClient;
  private readonly counts = new Map<string, number>();
  around: Around = (_step, send) => send();

  constructor(endpoint: string) {
    super(endpoint, { rng: systemRng });
    this.inner = new SeClient(endpoint, { rng: systemRng });
  }

  retarget(endpoint: string): void {
    this.inner.close();
    this.inner = new SeClient(endpoint, { rng: systemRng });
  }

  /** The client for the current host (plain calls outside the owner flows). */
  get current(): SeClient {
    return this.inner;
  }

  override async call<M extends MethodName>(
    method: M,
    req: Req<M>,
    signer?: Uint8Array,
    deadlineMs?: number,
  ): Promise<Res<M>> {
    const occurrence = (this.counts.get(method) ?? 0) + 1;
    this.counts.set(method, occurrence);
    const sent = signer ? signAs(method, req, signer) : req;
    const step = { method, occurrence, request: req, signer, sent } as Step;
    return (await this.around(step, () => this.inner.call(method, sent, undefined, deadlineMs))) as Res<M>;
  }

  /** Sends a request exactly as given (no signing) to the current host. */
  send<M extends MethodName>(method: M, req: Req<M>): Promise<Res<M>> {
    return this.inner.call(method, req);
  }

  override close(): void {
    this.inner.close();
    super.close();
  }
}
