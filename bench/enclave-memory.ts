// Enclave memory per live statechain, measured where it can be measured exactly: the enclave's own code
// (enclave/service.ts and enclave/steps/) in this process, coins created through its handlers with owner-signed requests, then
// the heap after a full collection, before and after. Run as a child (`node --expose-gc`) by transfer.bench.ts;
// prints one JSON object. `SNAP=<file>` also writes heap snapshots (`<file>.0` before, `<file>` after) to compare.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import v8 from "node:v8";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as bitcoin from "bitcoinjs-lib";
import { SimulatorProvider } from "../attestation/providers/simulator.ts";
import { SimulatorCa } from "../attestation/sim-ca.ts";
import { ActionLog } from "../enclave/log.ts";
import { measure } from "../enclave/measure.ts";
import { DEFAULT_POLICY } from "../enclave/policy.ts";
import { ANSWER_TTL_MS, Enclave } from "../enclave/service.ts";
import { DepositFundRequest, DepositInitRequest, DepositKeyGenRequest } from "../proto/gen/statechain.ts";
import { type Authenticated, type Codec, signRequest } from "../protocol/auth.ts";
import { holderKeyGenCommit, holderKeyGenFinish } from "../protocol/ecdsa2p/holder.ts";
import { generatePaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { pointBytes } from "../protocol/encoding.ts";
import { systemRng as rng } from "../protocol/rng.ts";
import { p2wpkhScript } from "../protocol/tx/script.ts";
import { ownerViewOf, testInstanceKeys } from "../test/helpers/owners.ts";

const COINS = Number(process.argv[2] ?? 200);
const gc = (globalThis as { gc?: () => void }).gc!;
let clock = Date.now();

const signed = <T extends Authenticated>(codec: Codec<T>, method: string, req: T, sk: Uint8Array) =>
  Buffer.from(
    codec
      .encode(
        signRequest(codec, `/statechain.v1.StatechainService/${method}`, req, sk, { nowMs: clock, rng }),
      )
      .finish(),
  );

const instance = testInstanceKeys();
const view = ownerViewOf(instance);
const ca = SimulatorCa.open(path.join(mkdtempSync(path.join(tmpdir(), "encmem-")), "sim-ca"));
const enclave = new Enclave({
  policy: DEFAULT_POLICY,
  provider: new SimulatorProvider({ ca, pcrs: measure() }),
  instance,
  log: new ActionLog(),
  rng,
  now: () => clock,
  instanceId: Buffer.from(rng(16)),
  pcrs: measure(),
  simulatorRootPem: ca.rootPem(),
  version: "bench",
});

async function depositOne(): Promise<void> {
  const c = secp256k1.utils.randomSecretKey();
  const C = Buffer.from(secp256k1.getPublicKey(c, true));
  // The owner's Paillier key (each coin its own) is the owner's cost, made before the measured heap is read.
  const keygenSessionId = Buffer.from(rng(16));
  const h1 = holderKeyGenCommit({
    sessionId: keygenSessionId,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: view.ringPedersen,
    rng,
  });
  const init = await enclave.keyGenInit({
    signedRequest: signed(
      DepositInitRequest,
      "DepositInit",
      { proofKey: C, guard: undefined, auth: undefined, holderCommit: h1.msg, keygenSessionId },
      c,
    ),
  });
  const two = holderKeyGenFinish(h1.state, init.seShare!, { rng });
  await enclave.keyGenFinish({
    signedRequest: signed(
      DepositKeyGenRequest,
      "DepositKeyGen",
      { depositId: init.depositId, ownerShare: two.msg, auth: undefined },
      c,
    ),
  });
  const P = pointBytes(two.key.sharedPublicKey);
  const funding = new bitcoin.Transaction();
  funding.version = 2;
  funding.addInput(Buffer.from(rng(32)), 0);
  funding.addOutput(p2wpkhScript(P), 1_000_000n);
  const b = secp256k1.utils.randomSecretKey();
  await enclave.bindFunding({
    signedRequest: signed(
      DepositFundRequest,
      "DepositFund",
      {
        depositId: init.depositId,
        fundingTx: Buffer.from(funding.toBuffer()),
        vout: 0,
        backupKey: Buffer.from(secp256k1.getPublicKey(b, true)),
        auth: undefined,
      },
      c,
    ),
    chainTip: 100,
  });
}

/** Heap and external memory, without compiled code: the JIT keeps compiling for a while after warm-up, and
 * that is not memory a coin costs. */
const used = () => {
  const code = v8
    .getHeapSpaceStatistics()
    .filter((s) => s.space_name.startsWith("code"))
    .reduce((a, s) => a + s.space_used_size, 0);
  const m = process.memoryUsage();
  return m.heapUsed - code + m.external;
};

// Warm up code paths and caches first, so the measurement sees coins, not JIT code.
for (let i = 0; i < 30; i++) await depositOne();
const settle = () => {
  clock += ANSWER_TTL_MS + 1000;
  enclave.sweepDeposits();
  gc();
  gc();
};
settle();
const before = used();
if (process.env.SNAP) v8.writeHeapSnapshot(`${process.env.SNAP}.0`);
for (let i = 0; i < COINS; i++) await depositOne();
settle();
const after = used();
const m = process.memoryUsage();
process.stdout.write(
  `${JSON.stringify({ coins: COINS, bytes_per_coin: Math.round((after - before) / COINS), live: enclave.coins.size, heap_bytes: m.heapUsed, external_bytes: m.external })}\n`,
);
if (process.env.SNAP) v8.writeHeapSnapshot(process.env.SNAP);
