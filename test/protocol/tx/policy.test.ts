// The enclave's co-signing policy: every rule has a transaction that breaks only that rule.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import bcoin from "bcoin";
import { Transaction } from "bitcoinjs-lib";
import { ProtocolError } from "../../../protocol/errors.ts";
import {
  ANCHOR_SCRIPT,
  backupLock,
  bip143Digest,
  buildBackupTx,
  buildKickoffTx,
  buildWithdrawalTx,
  type CoinPolicyContext,
  checkBackupTx,
  checkKickoffTx,
  checkWithdrawalTx,
  p2wpkhScript,
  p2wpkhScriptCode,
  txidToHex,
} from "../../../protocol/tx/index.ts";
import { ctxFor, key } from "./helpers.ts";

const B3 = key("backup-3");
const W = p2wpkhScript(key("withdraw").pk);
const FEE = p2wpkhScript(key("se-fee").pk);

function throwsCode(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function mutate(raw: Uint8Array, fn: (tx: Transaction) => void): Uint8Array {
  const tx = Transaction.fromBuffer(raw);
  fn(tx);
  return new Uint8Array(tx.toBuffer());
}

/** The same digest from bcoin's independent BIP143 implementation. */
function bcoinDigest(raw: Uint8Array, pk: Uint8Array, amount: bigint): Uint8Array {
  const tx = bcoin.TX.fromRaw(Buffer.from(raw));
  const code = bcoin.Script.fromRaw(Buffer.from(p2wpkhScriptCode(pk)));
  return new Uint8Array(tx.signatureHash(0, code, Number(amount), 1, 1));
}

describe("absolute-mode backup", () => {
  const ctx = ctxFor();
  const owner = 3;
  const lock = 980; // 1000 − 2·10
  const backup = () =>
    buildBackupTx({
      mode: "absolute",
      spend: ctx.outpoint,
      spendAmountSat: ctx.amountSat,
      backupKey: B3.pk,
      lock,
      feeRateSatVb: 2,
    }).raw;
  const opts = { ownerIndex: owner, backupKey: B3.pk, tip: 900 };

  test("backupLock is h0 − (n−1)·c and runs out", () => {
    assert.equal(backupLock(ctx, 1), 1000);
    assert.equal(backupLock(ctx, 3), 980);
    throwsCode(() => backupLock(ctx, 101), "BACKUP_LOCK_EXHAUSTED");
    throwsCode(() => backupLock(ctx, 0), "OWNER_INDEX");
  });

  test("the built backup passes and its digest matches bcoin's BIP143", () => {
    const raw = backup();
    const r = checkBackupTx(raw, ctx, opts);
    assert.equal(r.lock, lock);
    assert.equal(r.feeSat, 220n);
    assert.deepEqual(r.digest, bip143Digest(raw, 0, ctx.sharedPublicKey, ctx.amountSat));
    assert.deepEqual(r.digest, bcoinDigest(raw, ctx.sharedPublicKey, ctx.amountSat));
    assert.equal(txidToHex(r.txid), Transaction.fromBuffer(raw).getId());
  });

  test("wrong locktime is named with both values and the owner", () => {
    const raw = mutate(backup(), (tx) => {
      tx.locktime = 990;
    });
    throwsCode(
      () => checkBackupTx(raw, ctx, opts),
      "TX_LOCKTIME",
      /backup locktime 990 ≠ expected 980 for owner 3/,
    );
    // An older owner's lock is refused for the newer owner.
    throwsCode(() => checkBackupTx(backup(), ctx, { ...opts, ownerIndex: 2 }), "TX_LOCKTIME");
  });

  test("lock must stay above tip + safety margin", () => {
    assert.ok(
      checkBackupTx(backup(), ctx, { ...opts, tip: 973 }),
      "a lock above tip 973 + the safety margin is accepted",
    );
    throwsCode(
      () => checkBackupTx(backup(), ctx, { ...opts, tip: 974 }),
      "BACKUP_LOCK_TOO_SOON",
      /not above tip 974/,
    );
  });

  test("wrong outpoint (txid or vout)", () => {
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => {
            tx.ins[0]!.index = 0;
          }),
          ctx,
          opts,
        ),
      "TX_OUTPOINT",
    );
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => void tx.ins[0]!.hash.fill(8)),
          ctx,
          opts,
        ),
      "TX_OUTPOINT",
      /not the statechain outpoint/,
    );
  });

  test("wrong payee, extra inputs and outputs", () => {
    throwsCode(() => checkBackupTx(backup(), ctx, { ...opts, backupKey: key("other").pk }), "TX_PAYEE");
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => tx.addInput(new Uint8Array(32).fill(9), 0, 0xfffffffe)),
          ctx,
          opts,
        ),
      "TX_INPUTS",
    );
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => tx.addOutput(W, 1000n)),
          ctx,
          opts,
        ),
      "TX_OUTPUTS",
    );
  });

  test("wrong sequence (0xFFFFFFFF would disable the locktime) and version", () => {
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => {
            tx.ins[0]!.sequence = 0xffffffff;
          }),
          ctx,
          opts,
        ),
      "TX_SEQUENCE",
    );
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => {
            tx.version = 1;
          }),
          ctx,
          opts,
        ),
      "TX_VERSION",
    );
  });

  test("fee below the relay minimum, negative, or absurdly high", () => {
    const low = mutate(backup(), (tx) => {
      tx.outs[0]!.value = ctx.amountSat - 109n;
    });
    throwsCode(() => checkBackupTx(low, ctx, opts), "TX_FEE_LOW", /below the relay minimum 110 sat/);
    const neg = mutate(backup(), (tx) => {
      tx.outs[0]!.value = ctx.amountSat + 1n;
    });
    throwsCode(() => checkBackupTx(neg, ctx, opts), "TX_FEE_NEGATIVE");
    const high = mutate(backup(), (tx) => {
      tx.outs[0]!.value = ctx.amountSat - 200_000n;
    });
    throwsCode(() => checkBackupTx(high, ctx, opts), "TX_FEE_HIGH");
    throwsCode(() => checkBackupTx(backup(), { ...ctx, maxFeeSat: 219n }, opts), "TX_FEE_HIGH");
    throwsCode(() => checkBackupTx(backup(), { ...ctx, minFeeRateSatVb: 2.5 }, opts), "TX_FEE_LOW");
  });

  test("dust output", () => {
    const small = { ...ctx, amountSat: 500n };
    const raw = mutate(backup(), (tx) => {
      tx.outs[0]!.value = 290n;
    });
    throwsCode(() => checkBackupTx(raw, small, opts), "TX_DUST", /below the dust limit of 294 sat/);
  });

  test("scriptSig, trailing bytes and garbage are refused", () => {
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => {
            tx.ins[0]!.script = Uint8Array.from([0x51]);
          }),
          ctx,
          opts,
        ),
      "TX_SCRIPTSIG",
    );
    throwsCode(() => checkBackupTx(Uint8Array.from([...backup(), 0]), ctx, opts), "TX_PARSE");
    throwsCode(() => checkBackupTx(Uint8Array.from([1, 2, 3]), ctx, opts), "TX_PARSE");
  });

  test("a kick-off-mode backup shape is refused in absolute mode", () => {
    const raw = buildBackupTx({
      mode: "kickoff",
      spend: ctx.outpoint,
      spendAmountSat: ctx.amountSat,
      backupKey: B3.pk,
      lock: 980,
      feeRateSatVb: 1,
    }).raw;
    throwsCode(() => checkBackupTx(raw, ctx, opts), "TX_SEQUENCE");
  });
});

describe("kick-off mode", () => {
  const base = ctxFor({ mode: "kickoff", initialLock: 50, interval: 10 });
  const kickoff = buildKickoffTx({
    outpoint: base.outpoint,
    amountSat: base.amountSat,
    sharedPublicKey: base.sharedPublicKey,
    feeRateSatVb: 1,
  });
  const ctx: CoinPolicyContext = {
    ...base,
    kickoff: { txid: kickoff.txid, amountSat: kickoff.outputAmountSat },
  };
  const backup = (lock = 30) =>
    buildBackupTx({
      mode: "kickoff",
      spend: { txid: kickoff.txid, vout: 0 },
      spendAmountSat: kickoff.outputAmountSat,
      backupKey: B3.pk,
      lock,
      feeRateSatVb: 1,
    }).raw;
  const opts = { ownerIndex: 3, backupKey: B3.pk, tip: 5000 };

  test("the kick-off passes: [P2WPKH(P), anchor], own relay fee", () => {
    const r = checkKickoffTx(kickoff.raw, base);
    assert.deepEqual(r.txid, kickoff.txid);
    assert.equal(r.outputAmountSat, base.amountSat - 330n - 153n);
    assert.equal(r.feeSat, 153n);
    assert.deepEqual(r.digest, bcoinDigest(kickoff.raw, base.sharedPublicKey, base.amountSat));
    // Re-signing the same kick-off is allowed; a different one is not.
    assert.ok(checkKickoffTx(kickoff.raw, ctx), "re-signing the same kick-off is allowed");
    const other = buildKickoffTx({
      ...kickoff,
      outpoint: base.outpoint,
      amountSat: base.amountSat,
      sharedPublicKey: base.sharedPublicKey,
      feeRateSatVb: 2,
    });
    throwsCode(() => checkKickoffTx(other.raw, ctx), "KICKOFF_ALREADY_SIGNED");
  });

  test("kick-off rules: mode, payee, anchor, outputs, lock fields, fee, backup reserve", () => {
    throwsCode(() => checkKickoffTx(kickoff.raw, ctxFor()), "TX_MODE");
    const k = kickoff.raw;
    throwsCode(
      () =>
        checkKickoffTx(
          mutate(k, (tx) => {
            tx.outs[0]!.script = W;
          }),
          base,
        ),
      "TX_PAYEE",
    );
    throwsCode(
      () =>
        checkKickoffTx(
          mutate(k, (tx) => {
            tx.outs[1]!.value = 331n;
          }),
          base,
        ),
      "TX_ANCHOR",
    );
    throwsCode(
      () =>
        checkKickoffTx(
          mutate(k, (tx) => {
            tx.outs[1]!.script = Uint8Array.from([0x51]);
          }),
          base,
        ),
      "TX_ANCHOR",
    );
    throwsCode(
      () =>
        checkKickoffTx(
          mutate(k, (tx) => tx.addOutput(W, 1000n)),
          base,
        ),
      "TX_OUTPUTS",
    );
    throwsCode(
      () =>
        checkKickoffTx(
          mutate(k, (tx) => {
            tx.ins[0]!.sequence = 0xfffffffe;
          }),
          base,
        ),
      "TX_SEQUENCE",
    );
    throwsCode(
      () =>
        checkKickoffTx(
          mutate(k, (tx) => {
            tx.locktime = 1;
          }),
          base,
        ),
      "TX_LOCKTIME",
    );
    throwsCode(
      () =>
        checkKickoffTx(
          mutate(k, (tx) => {
            tx.outs[0]!.value += 1n;
          }),
          base,
        ),
      "TX_FEE_LOW",
    );
    throwsCode(
      () =>
        checkKickoffTx(
          mutate(k, (tx) => {
            tx.ins[0]!.index = 0;
          }),
          base,
        ),
      "TX_OUTPOINT",
    );
    // K must still pay a backup fee and a non-dust backup output (110 + 294 sat at 1 sat/vB).
    const tiny = { ...base, amountSat: 330n + 153n + 403n };
    const raw = mutate(k, (tx) => {
      tx.outs[0]!.value = 403n;
    });
    throwsCode(() => checkKickoffTx(raw, tiny), "TX_DUST", /cannot fund a backup \(needs 404 sat\)/);
  });

  test("backup: relative lock L1 − (n−1)·c spending kick-off output 0", () => {
    assert.equal(backupLock(ctx, 3), 30);
    const r = checkBackupTx(backup(), ctx, opts);
    assert.equal(r.lock, 30);
    assert.deepEqual(r.digest, bcoinDigest(backup(), ctx.sharedPublicKey, kickoff.outputAmountSat));
    throwsCode(() => checkBackupTx(backup(), base, opts), "KICKOFF_MISSING");
    throwsCode(
      () => checkBackupTx(backup(40), ctx, opts),
      "TX_SEQUENCE",
      /backup relative lock 40 ≠ expected 30 for owner 3/,
    );
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => {
            tx.locktime = 7;
          }),
          ctx,
          opts,
        ),
      "TX_LOCKTIME",
    );
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => {
            tx.ins[0]!.index = 1;
          }),
          ctx,
          opts,
        ),
      "TX_OUTPOINT",
    );
    throwsCode(
      () =>
        checkBackupTx(
          mutate(backup(), (tx) => {
            tx.ins[0]!.hash = ctx.outpoint.txid;
          }),
          ctx,
          opts,
        ),
      "TX_OUTPOINT",
      /not kick-off output/,
    );
  });

  test("backup lock must exceed the safety margin, and the tip once the kick-off confirmed", () => {
    const five = { ...ctx, initialLock: 26 }; // owner 3: 26 − 20 = 6 = margin
    const raw6 = backup(6);
    throwsCode(
      () => checkBackupTx(raw6, five, opts),
      "BACKUP_LOCK_TOO_SOON",
      /not above the safety margin 6/,
    );
    assert.ok(
      checkBackupTx(backup(), ctx, { ...opts, kickoffHeight: 4977 }),
      "with the kick-off confirmed at 4977, the backup's lock 4977 + 30 is above 5006 and accepted",
    );
    throwsCode(
      () => checkBackupTx(backup(), ctx, { ...opts, kickoffHeight: 4976 }),
      "BACKUP_LOCK_TOO_SOON",
      /matures at 5006/,
    );
  });
});

describe("withdrawal", () => {
  const ctx = ctxFor();
  const build = (seFee?: bigint, spend = ctx.outpoint, amount = ctx.amountSat) =>
    buildWithdrawalTx({
      spend,
      spendAmountSat: amount,
      withdrawScript: W,
      seFee: seFee === undefined ? undefined : { script: FEE, amountSat: seFee },
      feeRateSatVb: 1,
    }).raw;

  test("pays the withdraw script, with and without the SE fee", () => {
    const r = checkWithdrawalTx(build(), ctx, { withdrawScript: W, minSeFeeSat: 0n });
    assert.equal(r.spendAmountSat, ctx.amountSat);
    assert.deepEqual(r.digest, bcoinDigest(build(), ctx.sharedPublicKey, ctx.amountSat));
    assert.ok(
      checkWithdrawalTx(build(5000n), ctx, { withdrawScript: W, feeScript: FEE, minSeFeeSat: 5000n }),
      "a withdrawal paying exactly the minimum SE fee is accepted",
    );
  });

  test("rules: payee, SE fee, extra outputs, outpoint, lock fields, miner fee", () => {
    const o = { withdrawScript: W, minSeFeeSat: 0n };
    throwsCode(() => checkWithdrawalTx(build(), ctx, { ...o, withdrawScript: FEE }), "TX_PAYEE");
    throwsCode(() => checkWithdrawalTx(build(5000n), ctx, o), "TX_OUTPUTS");
    throwsCode(
      () => checkWithdrawalTx(build(), ctx, { ...o, feeScript: FEE, minSeFeeSat: 5000n }),
      "TX_OUTPUTS",
    );
    throwsCode(
      () => checkWithdrawalTx(build(4999n), ctx, { ...o, feeScript: FEE, minSeFeeSat: 5000n }),
      "TX_SE_FEE",
    );
    throwsCode(
      () => checkWithdrawalTx(build(5000n), ctx, { withdrawScript: W, feeScript: W, minSeFeeSat: 1n }),
      "TX_PAYEE",
    );
    throwsCode(() => checkWithdrawalTx(build(), ctx, { ...o, minSeFeeSat: 1n }), "POLICY_CONTEXT");
    throwsCode(
      () => checkWithdrawalTx(build(undefined, { txid: new Uint8Array(32).fill(3), vout: 0 }), ctx, o),
      "TX_OUTPOINT",
    );
    throwsCode(
      () =>
        checkWithdrawalTx(
          mutate(build(), (tx) => {
            tx.locktime = 5;
          }),
          ctx,
          o,
        ),
      "TX_LOCKTIME",
    );
    throwsCode(
      () =>
        checkWithdrawalTx(
          mutate(build(), (tx) => {
            tx.ins[0]!.sequence = 1;
          }),
          ctx,
          o,
        ),
      "TX_SEQUENCE",
    );
    throwsCode(
      () =>
        checkWithdrawalTx(
          mutate(build(), (tx) => {
            tx.outs[0]!.value += 1n;
          }),
          ctx,
          o,
        ),
      "TX_FEE_LOW",
    );
    throwsCode(
      () => checkWithdrawalTx(build(), ctx, { ...o, withdrawScript: Uint8Array.from([0x51]) }),
      "TX_SCRIPT",
    );
  });

  test("in kick-off mode it may spend kick-off output 0 instead", () => {
    const k = buildKickoffTx({
      outpoint: ctx.outpoint,
      amountSat: ctx.amountSat,
      sharedPublicKey: ctx.sharedPublicKey,
      feeRateSatVb: 1,
    });
    const kctx: CoinPolicyContext = {
      ...ctx,
      mode: "kickoff",
      initialLock: 50,
      kickoff: { txid: k.txid, amountSat: k.outputAmountSat },
    };
    const raw = build(undefined, { txid: k.txid, vout: 0 }, k.outputAmountSat);
    const r = checkWithdrawalTx(raw, kctx, { withdrawScript: W, minSeFeeSat: 0n });
    assert.equal(r.spendAmountSat, k.outputAmountSat);
    assert.deepEqual(r.digest, bcoinDigest(raw, ctx.sharedPublicKey, k.outputAmountSat));
    throwsCode(() => checkWithdrawalTx(raw, ctx, { withdrawScript: W, minSeFeeSat: 0n }), "TX_OUTPOINT");
    // The anchor is not the coin.
    const anchor = build(undefined, { txid: k.txid, vout: 1 }, k.outputAmountSat);
    throwsCode(() => checkWithdrawalTx(anchor, kctx, { withdrawScript: W, minSeFeeSat: 0n }), "TX_OUTPOINT");
  });
});

test("the context itself is validated", () => {
  const raw = new Uint8Array(10);
  throwsCode(
    () => checkBackupTx(raw, ctxFor({ interval: 0 }), { ownerIndex: 1, backupKey: B3.pk, tip: 0 }),
    "POLICY_CONTEXT",
  );
  throwsCode(() => backupLock(ctxFor({ mode: "kickoff", initialLock: 70_000 }), 1), "POLICY_CONTEXT");
  throwsCode(() => backupLock(ctxFor({ initialLock: 500_000_000 }), 1), "POLICY_CONTEXT");
  throwsCode(() => backupLock(ctxFor({ sharedPublicKey: new Uint8Array(33) }), 1), "INVALID_POINT");
  throwsCode(
    () => backupLock(ctxFor({ kickoff: { txid: new Uint8Array(32), amountSat: 1n } }), 1),
    "POLICY_CONTEXT",
    /only used in kick-off mode/,
  );
  assert.deepEqual(ANCHOR_SCRIPT.length, 34);
});
