// The public StatechainService, assembled from the handler groups.
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { StatechainServiceService } from "../../proto/gen/statechain.ts";
import { fail } from "../../protocol/errors.ts";
import { outpointBytes } from "../../protocol/outpoint.ts";
import { isServiceError } from "../errors.ts";
import { KeyedMutex } from "../keyed-mutex.ts";
import { type Handler, implement, type RpcOptions, tolerant } from "../rpc.ts";
import { depositHandlers } from "./deposit.ts";
import type { ApiDeps } from "./deps.ts";
import { infoHandlers } from "./info.ts";
import { recoveryHandlers } from "./recovery.ts";
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
  "signComplete",
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

/** The enclave's answers for a coin or deposit it does not hold (enclave/core.ts). */
const ENCLAVE_UNKNOWN = /^\[(UNKNOWN_STATECHAIN|UNKNOWN_DEPOSIT)\]/;

/**
 * An enclave that does not know a coin the host holds live has restarted since the host last looked (the
 * monitor polls every few seconds), and lost the coin's share. Passing on "the enclave holds no statechain" would
 * leave the owner re-running a command that cannot succeed (seen in the crash loop, #19): the host checks the
 * enclave now, marks the lost instance's coins exit-by-backup, and says what that means.
 */
function restartAware(deps: ApiDeps, handler: Handler<never, unknown>): Handler<never, unknown> {
  return async (req, ctx) => {
    try {
      return await handler(req, ctx);
    } catch (err) {
      if (!isServiceError(err) || !ENCLAVE_UNKNOWN.test(err.details ?? "")) throw err;
      const current = await deps.recheckEnclave();
      const r = req as Parameters<typeof coinKey>[0];
      const id = r.statechainId;
      const row =
        id && id.txid.length === 32
          ? await deps.store.statechain(outpointBytes({ txid: Buffer.from(id.txid), vout: id.vout }))
          : r.depositId && r.depositId.length === 16
            ? await deps.store.deposit(r.depositId)
            : undefined;
      if (!row || Buffer.from(row.enclave_instance).equals(current)) throw err;
      if (id && id.txid.length === 32)
        return fail(
          "ENCLAVE_RESTARTED",
          "the enclave restarted and lost this coin's key share: the coin can now only leave by its backup transaction (`wallet exit`)",
          "precondition",
        );
      return fail(
        "ENCLAVE_RESTARTED",
        "the enclave restarted during this deposit's key generation and lost it: start a new deposit (if this deposit's funding was already broadcast, it leaves by its backup transaction)",
        "precondition",
      );
    }
  };
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
    ...recoveryHandlers(deps),
  } as unknown as Record<string, Handler<never, unknown>>;
  const locks = new KeyedMutex();
  for (const name of SERIALIZED) handlers[name] = serialized(locks, restartAware(deps, handlers[name]!));
  return implement(statechainDefinition, handlers, {
    ...opts,
    idempotency: {
      methods: IDEMPOTENT,
      lookup: async (hash) => (await deps.store.idempotent(hash))?.response,
    },
  });
}
