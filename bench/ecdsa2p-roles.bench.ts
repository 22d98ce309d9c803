// Two-party ECDSA with the owner as Paillier holder (DESIGN.md section 3.1, revised): per role, the time of a
// deposit keygen, a key update and a signature, each step timed on its own (single-threaded: time ≈ CPU). The
// owner's Paillier key is made ahead (a wallet prepares it when it hands out an address): its cost is reported
// apart. `npm run bench -- ecdsa2p` times the same signature as a whole beside a single-party one, and the
// modular exponentiation and Paillier operations under it.
import { sign as edSign, generateKeyPairSync } from "node:crypto";
import { writeNat } from "../protocol/ecdsa2p/codec.ts";
import { Q } from "../protocol/ecdsa2p/ec.ts";
import {
  type HolderKey,
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderKeyUpdate,
  holderKeyUpdateFinish,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
} from "../protocol/ecdsa2p/holder.ts";
import { generatePaillierKey, type PaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { instancePublicKey, partialStatementBytes } from "../protocol/ecdsa2p/partial-statement.ts";
import {
  generateRingPedersen,
  readRingPedersen,
  verifyRingPedersen,
} from "../protocol/ecdsa2p/ring-pedersen.ts";
import {
  type SignerKey,
  signerKeyGenFinish,
  signerKeyGenShare,
  signerKeyUpdate,
  signerSignPartial,
  signerSignStart,
} from "../protocol/ecdsa2p/signer.ts";
import { bytesToBigInt } from "../protocol/encoding.ts";
import { systemRng as rng } from "../protocol/rng.ts";
import { report, time } from "./harness.ts";

const RUNS = 20;
const sid = () => rng(16);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.ceil(s.length / 2) - 1]! * 1000) / 1000;
};

/** Runs `fn` (which adds per-role times to `split`) RUNS times, reports the medians. */
async function measure(
  name: string,
  fn: (split: { se: number[]; owner: number[] }) => unknown | Promise<unknown>,
  extra: Record<string, unknown> = {},
) {
  const split = { se: [] as number[], owner: [] as number[] };
  const warm = { se: [] as number[], owner: [] as number[] };
  await fn(warm);
  const all = await time(() => fn(split), { runs: RUNS, warmup: 0 });
  report({
    bench: name,
    unit: "ms",
    median: all.median,
    p95: all.p95,
    runs: all.runs,
    se_ms: median(split.se),
    owner_ms: median(split.owner),
    ...extra,
  });
}

const lap = () => {
  let t = performance.now();
  return () => {
    const now = performance.now();
    const d = now - t;
    t = now;
    return d;
  };
};

export async function run(): Promise<void> {
  // Once per enclave instance: ring-Pedersen parameters with Π^prm (the owner verifies them once per instance).
  const t0 = performance.now();
  const rp = await generateRingPedersen(rng);
  report({
    bench: "ecdsa2p.roles.enclave-setup.ring-pedersen",
    unit: "ms",
    median: Math.round(performance.now() - t0),
    runs: 1,
    note: "once per enclave instance",
  });
  const t1 = performance.now();
  const holderRp = verifyRingPedersen(rp.params);
  report({
    bench: "ecdsa2p.roles.owner.verify-prm",
    unit: "ms",
    median: Math.round((performance.now() - t1) * 1000) / 1000,
    runs: 1,
    note: "once per enclave instance, cached by the wallet",
  });
  const signerRp = readRingPedersen(rp.params);
  const instance = generateKeyPairSync("ed25519");
  const instanceKey = instancePublicKey(
    Buffer.from(instance.publicKey.export({ format: "jwk" }).x!, "base64url"),
  );

  // The wallet's background cost per coin: a Paillier key with Π^mod and the keygen's two nonces.
  const keys: PaillierKey[] = [];
  const pk = await time(async () => keys.push(await generatePaillierKey({ rng })), { runs: RUNS, warmup: 0 });
  report({
    bench: "ecdsa2p.roles.owner.paillier-key",
    unit: "ms",
    median: pk.median,
    p95: pk.p95,
    runs: pk.runs,
    note: "wallet background, per coin, before the deposit or receive",
  });
  const spare = async () => keys.pop() ?? (await generatePaillierKey({ rng }));
  const prepared: PaillierKey[] = [];
  for (let i = 0; i < 3 * (RUNS + 1) + 2; i++) prepared.push(await generatePaillierKey({ rng }));
  const take = async () => prepared.pop() ?? (await spare());

  let coin: { holder: HolderKey; signer: SignerKey } | undefined;
  await measure(
    "ecdsa2p.roles.keygen",
    async (split) => {
      const l = lap();
      const sessionId = sid();
      const paillier = await take();
      l();
      const h1 = holderKeyGenCommit({ sessionId, paillier, ringPedersen: holderRp, rng });
      let owner = l();
      const s1 = signerKeyGenShare({ sessionId, commit: h1.msg, rng });
      let se = l();
      const h2 = holderKeyGenFinish(h1.state, s1.msg, { rng });
      owner += l();
      const signer = signerKeyGenFinish(s1.state, h2.msg, { ringPedersen: signerRp });
      se += l();
      split.se.push(se);
      split.owner.push(owner);
      coin = { holder: h2.key, signer };
    },
    { note: "deposit; the owner's Paillier key made ahead" },
  );

  await measure(
    "ecdsa2p.roles.sign",
    (split) => {
      const { holder, signer } = coin!;
      const sessionId = sid();
      const digest = rng(32);
      const l = lap();
      const c = holderSignCommit(holder, { sessionId, digest, rng });
      let owner = l();
      const s = signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng });
      let se = l();
      const opening = holderSignNonce(holder, c.state, s.msg, { rng });
      owner += l();
      const { c3, statement } = signerSignPartial(signer, s.session, opening, { rng });
      const statementSignature = edSign(null, partialStatementBytes(statement), instance.privateKey);
      se += l();
      const out = holderSignFinish(
        holder,
        c.state,
        { partialSignature: writeNat(c3), statementSignature },
        { instanceKey },
      );
      owner += l();
      if (!out.ok) throw new Error(out.reason);
      split.se.push(se);
      split.owner.push(owner);
    },
    { note: "both sides with every proof; the enclave's part includes signing the c3 statement" },
  );

  await measure(
    "ecdsa2p.roles.key-update",
    async (split) => {
      const { holder, signer } = coin!;
      const o2 = rng(32);
      o2[0] = 0x2a;
      const sessionId = sid();
      const paillier = await take();
      const l = lap();
      const r = holderKeyUpdate({
        sessionId,
        share: o2,
        sharedPublicKey: holder.sharedPublicKey,
        paillier,
        ringPedersen: holderRp,
        rng,
      });
      const owner0 = l();
      // s2 = s1·o1·o2⁻¹ (rotation.ts does this from t2 and x1 inside the enclave; the bench takes the shortcut).
      const inv = (x: bigint) => {
        let [a, b, u, v] = [x % Q, Q, 1n, 0n];
        while (a !== 0n) {
          const k = b / a;
          [a, b, u, v] = [b - k * a, a, v - k * u, u];
        }
        return ((v % Q) + Q) % Q;
      };
      const s2 = (bytesToBigInt(signer.share) * bytesToBigInt(holder.share) * inv(bytesToBigInt(o2))) % Q;
      const share = Buffer.from(s2.toString(16).padStart(64, "0"), "hex");
      l();
      const u = signerKeyUpdate({
        sessionId,
        share,
        holderShare: r.msg,
        sharedPublicKey: signer.sharedPublicKey,
        ringPedersen: signerRp,
        rng,
      });
      const se = l();
      holderKeyUpdateFinish(r.state, u.msg);
      split.se.push(se);
      split.owner.push(owner0 + l());
    },
    {
      note: "the enclave verifies the receiver's Π^mod, Π^fac, Π^log* and makes S2; the receiver's Paillier key made ahead",
    },
  );
}
