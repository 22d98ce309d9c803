// The public StatechainService, assembled from the handler groups.
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { StatechainServiceService } from "../../proto/gen/statechain.ts";
import { KeyedMutex } from "../keyed-mutex.ts";
import { type Handler, implement, type RpcOptions, tolerant } from "../rpc.ts";
import { depositHandlers } from "./deposit.ts";
import type { ApiDeps } from "./deps.ts";
import { infoHandlers } from "./info.ts";
import { signHandlers } from "./sign.ts";
import { transferHandlers } from "./transfer.ts";
import { withdrawHandlers } from "./withdraw.ts";

/** Methods whose answers are stored and replayed for an identical request (crash-safe retries). */
export const IDEMPOTENT = new Set([
  "depositInit",
  "depositKeyGen",
  "depositFund",
  "signFirst",
  "signSecond",
  "transferSenderInit",
  "transferSend",
  "transferReceiverInit",
  "transferReceiverKeyUpdate",
  "withdrawInit",
]);

/** Steps that read a coin's state, drive the enclave and commit: serialized per coin (host/keyed-mutex.ts). */
const SERIALIZED = new Set([
  "depositKeyGen",
  "depositFund",
  "depositConfirm",
  "signFirst",
  "signSecond",
  "transferSenderInit",
  "transferSend",
  "transferReceiverInit",
  "transferReceiverKeyUpdate",
  "withdrawInit",
  "withdrawConfirm",
]);

/** The coin a request is about: its statechain id, or its deposit id before funding; none when malformed. */
export function coinKey(req: {
  statechainId?: { txid: Uint8Array; vout: number };
  depositId?: Uint8Array;
}): string | undefined {
  const id = req.statechainId;
  if (id && id.txid.length === 32) return `statechain:${Buffer.from(id.txid).toString("hex")}:${id.vout}`;
  if (req.depositId && req.depositId.length === 16)
    return `deposit:${Buffer.from(req.depositId).toString("hex")}`;
  return undefined;
}

function serialized(locks: KeyedMutex, handler: Handler<never, unknown>): Handler<never, unknown> {
  return (req, ctx) => {
    const key = coinKey(req as Parameters<typeof coinKey>[0]);
    return key ? locks.run(key, () => handler(req, ctx)) : handler(req, ctx);
  };
}

export const statechainDefinition = tolerant(StatechainServiceService);

export function statechainService(
  deps: ApiDeps,
  opts: Omit<RpcOptions, "idempotency">,
): UntypedServiceImplementation {
  const handlers = {
    ...infoHandlers(deps),
    ...depositHandlers(deps),
    ...signHandlers(deps),
    ...transferHandlers(deps),
    ...withdrawHandlers(deps),
  } as unknown as Record<string, Handler<never, unknown>>;
  const locks = new KeyedMutex();
  for (const name of SERIALIZED) handlers[name] = serialized(locks, handlers[name]!);
  return implement(statechainDefinition, handlers, {
    ...opts,
    idempotency: {
      methods: IDEMPOTENT,
      lookup: async (hash) => (await deps.store.idempotent(hash))?.response,
    },
  });
}
