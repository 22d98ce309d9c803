// A host (or a simulator operator) between the receiver and the enclave, for integration tests: it records the
// methods a wallet calls and rewrites answers. In simulator mode it also holds the simulator CA, so it can issue a
// document the wallet's trust accepts (same root, same measurements): what a wallet sees from an enclave that
// attests other facts than the real one. Attested statements are rewritten with it and re-attested.
import path from "node:path";
import { decodeDocument } from "../../attestation/document.ts";
import { SimulatorProvider } from "../../attestation/providers/simulator.ts";
import {
  type DeletionReceipt,
  decodeReceipt,
  encodeReceipt,
  receiptHash,
} from "../../attestation/receipt.ts";
import { SimulatorCa } from "../../attestation/sim-ca.ts";
import {
  decodeTransferKeyStatement,
  encodeTransferKeyStatement,
  statementHash,
  type TransferKeyStatement,
} from "../../attestation/statements.ts";
import type { OwnerContext } from "../../client/owner.ts";
import type { SeClient } from "../../client/se-client.ts";
import type {
  TransferReceiverInitResponse,
  TransferReceiverKeyUpdateResponse,
} from "../../proto/gen/statechain.ts";
import type { SeProcess } from "./se-process.ts";

export type Intercept = (method: string, res: unknown) => unknown;

/** A context whose SE client records every method called and lets `intercept` rewrite (or replace) answers. */
export function hostile(base: OwnerContext, intercept: Intercept = (_m, res) => res) {
  const calls: string[] = [];
  const se = Object.create(base.se) as SeClient;
  se.call = (async (method: string, req: unknown, signer?: Uint8Array, deadlineMs?: number) => {
    calls.push(method);
    const res = await base.se.call(method as "getInfo", req as never, signer, deadlineMs);
    return intercept(method, res);
  }) as SeClient["call"];
  return { ctx: { ...base, se } as OwnerContext, calls };
}

/**
 * A new document like `doc` (same module id, measurements, nonce, user_data and public key unless `edit` says
 * otherwise), signed by the SE's simulator CA: it passes every check of the wallet's attestation trust.
 */
export async function reattest(
  se: SeProcess,
  doc: Uint8Array,
  edit: { userData?: Uint8Array; publicKey?: Uint8Array; nonce?: Uint8Array } = {},
): Promise<Buffer> {
  const d = decodeDocument(doc);
  const provider = new SimulatorProvider({
    ca: SimulatorCa.open(path.join(se.dataDir, "sim-ca")),
    moduleId: d.moduleId,
    pcrs: {
      pcr0: d.pcrs.get(0)!,
      pcr1: d.pcrs.get(1)!,
      pcr2: d.pcrs.get(2)!,
      others: new Map([...d.pcrs].filter(([i]) => i > 2)),
    },
  });
  return Buffer.from(
    await provider.attest({
      nonce: edit.nonce ?? d.nonce ?? undefined,
      userData: edit.userData ?? d.userData ?? undefined,
      publicKey: edit.publicKey ?? d.publicKey ?? undefined,
    }),
  );
}

/**
 * Rewrites the transfer-key statement of TransferReceiverInit's answer. `attested`: the document is issued
 * again for the new statement (an enclave attesting it); otherwise the genuine document is kept (a host that
 * only edits the statement beside it).
 */
export function restatedTransferKey(
  se: SeProcess,
  edit: (s: TransferKeyStatement) => void,
  opts: { attested: boolean } = { attested: true },
): Intercept {
  return async (method, res) => {
    if (method !== "transferReceiverInit") return res;
    const r = res as TransferReceiverInitResponse;
    const { v: _v, type: _t, ...s } = decodeTransferKeyStatement(r.transferContext);
    edit(s as TransferKeyStatement);
    const transferContext = Buffer.from(encodeTransferKeyStatement(s));
    const attestationDocument = opts.attested
      ? await reattest(se, r.attestationDocument, { userData: statementHash(transferContext) })
      : r.attestationDocument;
    return { ...r, attestationDocument, transferContext };
  };
}

/**
 * Rewrites the deletion receipt of TransferReceiverKeyUpdate's answer (and, with `publicKey`, the document's
 * public key), attested again for it by the simulator CA: the receipt still is the document's user_data.
 */
export function restatedDeletion(
  se: SeProcess,
  edit: (r: Omit<DeletionReceipt, "v">) => void,
  opts: { publicKey?: Uint8Array } = {},
): Intercept {
  return async (method, res) => {
    if (method !== "transferReceiverKeyUpdate") return res;
    const r = res as TransferReceiverKeyUpdateResponse;
    const rec = r.keyUpdate!;
    const { v: _v, ...fields } = decodeReceipt(rec.receipt);
    edit(fields);
    const receipt = Buffer.from(encodeReceipt(fields));
    const attestationDocument = await reattest(se, rec.attestationDocument, {
      userData: receiptHash(receipt),
      publicKey: opts.publicKey,
    });
    return { ...r, keyUpdate: { ...rec, receipt, attestationDocument } };
  };
}
