// The public StatechainService, assembled from the handler groups.
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { StatechainServiceService } from "../../proto/gen/statechain.ts";
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
  return implement(statechainDefinition, handlers, {
    ...opts,
    idempotency: {
      methods: IDEMPOTENT,
      lookup: async (hash) => (await deps.store.idempotent(hash))?.response,
    },
  });
}
