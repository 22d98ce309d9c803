// The wallet's connection to an SE: typed unary calls on StatechainService, signing each request with the
// proof key it names (common.v1.Auth), with deadlines and errors that keep the SE's message.
import { type ChannelCredentials, credentials, type ServiceError, status as Status } from "@grpc/grpc-js";
import type { Auth } from "../proto/gen/common.ts";
import {
  MailboxGetRequest,
  StatechainServiceClient,
  StatechainServiceService,
} from "../proto/gen/statechain.ts";
import { unary } from "../proto/unary.ts";
import { type Codec, signRequest } from "../protocol/auth.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { Rng } from "../protocol/rng.ts";

type Service = typeof StatechainServiceService;
export type MethodName = keyof Service;
type Req<M extends MethodName> = Parameters<Service[M]["requestSerialize"]>[0];
type Res<M extends MethodName> = ReturnType<Service[M]["responseDeserialize"]>;
export type SeRequest<M extends MethodName> = Req<M>;
export type SeResponse<M extends MethodName> = Res<M>;

/** A gRPC status code's name: 14 is "UNAVAILABLE", 4 "DEADLINE_EXCEEDED"; an unknown one stays a number. */
export function grpcStatusName(code: number): string {
  return Status[code] ?? String(code);
}

/** An SE refused or failed a call: `code` is the gRPC status, `message` the SE's words. */
export class SeError extends Error {
  override name = "SeError";
  constructor(
    readonly method: string,
    readonly code: number,
    message: string,
    /** The SE's address, when the call went out through an SeClient. */
    readonly endpoint?: string,
  ) {
    super(`${method}: ${message}`);
  }

  /** The gRPC status by name ("UNAVAILABLE"), as error codes are printed. */
  get codeName(): string {
    return grpcStatusName(this.code);
  }

  /** The SE could not be reached (no connection, or no answer in time), as opposed to an answer refusing. */
  get unreachable(): boolean {
    return this.code === Status.UNAVAILABLE || this.code === Status.DEADLINE_EXCEEDED;
  }
}

export interface SeClientOptions {
  rng: Rng;
  now?: () => number;
  deadlineMs?: number;
  credentials?: ChannelCredentials;
}

export class SeClient {
  readonly client: StatechainServiceClient;
  private readonly now: () => number;

  constructor(
    readonly endpoint: string,
    private readonly opts: SeClientOptions,
  ) {
    this.client = new StatechainServiceClient(endpoint, opts.credentials ?? credentials.createInsecure(), {
      "grpc.max_receive_message_length": 16 << 20,
    });
    this.now = opts.now ?? Date.now;
  }

  /** `req` with its `auth` filled in: signed by the proof key whose secret is `signer`, with a fresh nonce. */
  sign<M extends MethodName>(method: M, req: Req<M>, signer: Uint8Array): Req<M> {
    const def = StatechainServiceService[method];
    type R = Req<M> & { auth?: Auth };
    const codec: Codec<R> = {
      encode: (m) => ({ finish: () => def.requestSerialize(m as never) }),
      decode: (b) => def.requestDeserialize(Buffer.from(b)) as R,
    };
    return signRequest(codec, def.path, req as R, signer, { nowMs: this.now(), rng: this.opts.rng });
  }

  /** A MailboxGetBatch entry signed by the proof key whose secret is `signer` (under the batch's path). */
  signMailboxEntry(req: MailboxGetRequest, signer: Uint8Array): MailboxGetRequest {
    return signRequest(MailboxGetRequest, StatechainServiceService.mailboxGetBatch.path, req, signer, {
      nowMs: this.now(),
      rng: this.opts.rng,
    });
  }

  /**
   * Calls `method`; when `signer` (a proof key's secret) is given, the request is signed with it. Without one,
   * the request goes as it is: unsigned, or signed earlier with sign() (re-sending the very same signed request
   * is how a step is resumed: the SE answers a repeat with its stored response).
   */
  async call<M extends MethodName>(
    method: M,
    req: Req<M>,
    signer?: Uint8Array,
    deadlineMs?: number,
  ): Promise<Res<M>> {
    const def = StatechainServiceService[method];
    const request = signer ? this.sign(method, req, signer) : req;
    const fn = (this.client as unknown as Record<string, Parameters<typeof unary>[1]>)[method]!;
    try {
      return (await unary(this.client, fn, request, {
        deadlineMs: deadlineMs ?? this.opts.deadlineMs ?? 60_000,
      })) as Res<M>;
    } catch (err) {
      const e = err as ServiceError;
      if (typeof e.code === "number")
        throw new SeError(
          def.path.split("/").pop()!,
          e.code,
          // grpc-js ends a failed connection's details with an empty "Resolution note:".
          (e.details || e.message).replace(/\s*Resolution note:\s*$/, ""),
          this.endpoint,
        );
      throw err;
    }
  }

  close(): void {
    this.client.close();
  }
}

/**
 * Awaits `call` (an SE call just started) with `work` done while the SE answers: grpc-js writes the request a
 * turn of the event loop later, so `work` starts after that turn and both sides compute at once. The call's
 * rejection, if any, surfaces here after `work`, never as an unhandled one.
 */
export async function whileAnswering<T, W>(call: Promise<T>, work: () => W): Promise<[T, W]> {
  call.catch(() => {});
  await new Promise((resolve) => setImmediate(resolve));
  const done = work();
  return [await call, done];
}

/** Fails with a typed error unless `cond`: the wallet refuses a coin for a named reason. */
export function refuse(cond: unknown, code: string, message: string): asserts cond {
  if (!cond) throw new ProtocolError(code, message, "precondition");
}
