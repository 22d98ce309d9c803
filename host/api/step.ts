// Authentication and atomic commits for the public API. A step verifies the owner's signature first (without
// consuming its nonce), does its work, then commits its rows, the nonce and the answer in one transaction; a
// concurrent twin of the same request finds the stored answer instead of a replay error.

import type { Queryable } from "../../common/sqlite.ts";
import { type Authenticated, type Codec, DEFAULT_WINDOW_MS, verifyRequest } from "../../protocol/auth.ts";
import { check, ProtocolError } from "../../protocol/errors.ts";
import type { CallContext } from "../rpc.ts";
import type { StatechainRow } from "../store.ts";
import type { ApiDeps } from "./deps.ts";

export interface Authorized {
  key: Uint8Array;
  nonce: Uint8Array;
}

/**
 * Verifies `req.auth` under `key`, rate-limits the key and refuses a used nonce. The key's budget is charged only
 * for requests its holder signed: anyone can name a proof key (they are public), and charging unsigned requests
 * would let a stranger exhaust an owner's budget.
 */
export async function authorize<T extends Authenticated>(
  deps: ApiDeps,
  codec: Codec<T>,
  req: T,
  key: Uint8Array,
  ctx: CallContext,
): Promise<Authorized> {
  verifyRequest(codec, ctx.path, req, key, { nowMs: ctx.now, windowMs: DEFAULT_WINDOW_MS });
  check(
    deps.keyLimiter.take(Buffer.from(key).toString("hex")),
    "RATE_LIMITED",
    "too many requests for this key; slow down",
    "exhausted",
  );
  const used = await deps.store.db.get("SELECT 1 AS x FROM auth_nonces WHERE proof_key = ? AND nonce = ?", [
    key,
    req.auth!.nonce,
  ]);
  check(
    !used,
    "AUTH_REPLAY",
    "this request was already used (nonce replay); sign a fresh one",
    "unauthenticated",
  );
  return { key, nonce: req.auth!.nonce };
}

/**
 * `authorize` under the coin's current proof key. A request that its immediately previous owner signed is
 * refused with a message saying so: a wallet that missed its own transfer learns why, not just "bad signature".
 * Only that one former key is tried, so a refused request costs at most one more signature check.
 */
export async function authorizeOwner<T extends Authenticated>(
  deps: ApiDeps,
  codec: Codec<T>,
  req: T,
  row: Pick<StatechainRow, "statechain_id" | "owner_index" | "proof_key" | "deposit_proof_key">,
  ctx: CallContext,
): Promise<Authorized> {
  try {
    return await authorize(deps, codec, req, row.proof_key, ctx);
  } catch (err) {
    if (!(err instanceof ProtocolError && err.code === "AUTH_SIGNATURE") || row.owner_index < 2) throw err;
    const former = await formerOwnerKey(deps, row);
    if (!former) throw err;
    let signedByFormer = false;
    try {
      verifyRequest(codec, ctx.path, req, former, { nowMs: ctx.now, windowMs: DEFAULT_WINDOW_MS });
      signedByFormer = true;
    } catch {
      // not the former owner either: the original refusal stands
    }
    check(
      !signedByFormer,
      "AUTH_FORMER_OWNER",
      `this request is signed by owner ${row.owner_index - 1}, who transferred the coin: owner ${row.owner_index} holds it now and only its proof key is accepted`,
      "unauthenticated",
    );
    throw err;
  }
}

/** Owner (owner_index − 1)'s proof key: the depositor's, or the receiver's of the transfer that made it owner. */
async function formerOwnerKey(
  deps: ApiDeps,
  row: Pick<StatechainRow, "statechain_id" | "owner_index" | "deposit_proof_key">,
): Promise<Uint8Array | undefined> {
  if (row.owner_index === 2) return row.deposit_proof_key;
  const t = await deps.store.db.get<{ receiver_proof_key: Buffer }>(
    "SELECT receiver_proof_key FROM transfers WHERE statechain_id = ? AND new_owner_index = ?",
    [row.statechain_id, row.owner_index - 1],
  );
  return t?.receiver_proof_key;
}

/** Commits `write`, the nonce and the response atomically; returns the response to send. */
export async function commit<Res>(
  deps: ApiDeps,
  ctx: CallContext,
  auth: Authorized | undefined,
  codec: Codec<Res>,
  response: Res,
  write: (q: Queryable) => Promise<void> = async () => {},
): Promise<Res> {
  await deps.crash?.(ctx.method, "before-commit");
  const out = await deps.store.db.transaction(async (q) => {
    if (auth) {
      const fresh = await deps.store.useNonce(auth.key, auth.nonce, ctx.now + 2 * DEFAULT_WINDOW_MS, q);
      if (!fresh) {
        const stored = await deps.store.idempotent(ctx.requestHash, q);
        check(
          stored,
          "AUTH_REPLAY",
          "this request was already used (nonce replay); sign a fresh one",
          "unauthenticated",
        );
        return codec.decode(stored.response);
      }
    }
    await write(q);
    await deps.store.saveIdempotent(ctx.requestHash, ctx.method, codec.encode(response).finish(), ctx.now, q);
    return response;
  });
  await deps.crash?.(ctx.method, "after-commit");
  return out;
}

/** Marks a read-only request's nonce as used. */
export async function consumeNonce(deps: ApiDeps, ctx: CallContext, auth: Authorized): Promise<void> {
  await deps.store.db.transaction(async (q) => {
    const fresh = await deps.store.useNonce(auth.key, auth.nonce, ctx.now + 2 * DEFAULT_WINDOW_MS, q);
    check(
      fresh,
      "AUTH_REPLAY",
      "this request was already used (nonce replay); sign a fresh one",
      "unauthenticated",
    );
  });
}

/**
 * Side effects that follow a committed step (the SMT, the watchtower) run after the answer: they are idempotent
 * and start-up repeats them from the committed rows, so a crash in between loses nothing. Readers that need
 * them (GetSmtProof) bring the tree up to date first.
 */
export function afterCommit(deps: ApiDeps, what: string, work: () => Promise<void>): void {
  void work().catch((err: Error) =>
    deps.log.warn({ err: err.message, step: what }, "post-commit work failed; start-up repeats it"),
  );
}
