// The cryptographic floor of one transfer: every operation the protocol cannot avoid, each measured alone in
// this process (no gRPC, no SQLite, no waiting): the receiver's fixed-share keygen on both sides with the
// receiver's Paillier key made ahead, one two-party signature (the receiver's backup), the three ECIES round trips (x1,
// the transfer message, t2), the sender's statechain signature and the receiver's check of it, two attestation
// documents made and verified, and the backup signature checks.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { SimulatorProvider } from "../attestation/providers/simulator.ts";
import { SimulatorCa } from "../attestation/sim-ca.ts";
import { CertCache, verifyAttestation } from "../attestation/verify.ts";
import { measure } from "../enclave/measure.ts";
import { writeNat } from "../protocol/ecdsa2p/codec.ts";
import {
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderKeyUpdate,
  holderKeyUpdateFinish,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
} from "../protocol/ecdsa2p/holder.ts";
import { generatePaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import {
  signerKeyGenFinish,
  signerKeyGenShare,
  signerKeyUpdate,
  signerSignPartial,
  signerSignStart,
} from "../protocol/ecdsa2p/signer.ts";
import { decrypt, encrypt } from "../protocol/ecies.ts";
import { N, pointBytes, scalarBytes } from "../protocol/encoding.ts";
import { systemRng as rng } from "../protocol/rng.ts";
import { initialState, signTransfer, verifyStatechainTx } from "../protocol/statechain.ts";
import { ownerViewOf, testInstanceKeys } from "../test/helpers/owners.ts";
import { time } from "./harness.ts";

const RUNS = 20;

export async function cryptoFloor(): Promise<{ total: number; runs: number; parts: Record<string, number> }> {
  const instance = testInstanceKeys();
  const view = ownerViewOf(instance);
  const sid = () => rng(16);
  // The owners' Paillier keys are made ahead (a wallet prepares one per address it hands out).
  const pool = await Promise.all(Array.from({ length: RUNS + 4 }, () => generatePaillierKey()));
  // A deposit's keys, to sign with and to rotate.
  const s0 = sid();
  const h1 = holderKeyGenCommit({
    sessionId: s0,
    paillier: pool.pop()!,
    ringPedersen: view.ringPedersen,
    rng,
  });
  const e1 = signerKeyGenShare({ sessionId: s0, commit: h1.msg, rng });
  const h2 = holderKeyGenFinish(h1.state, e1.msg, { rng });
  const se = signerKeyGenFinish(e1.state, h2.msg, { ringPedersen: instance.ringPedersenPublic });
  const owner = h2.key;
  const P = pointBytes(owner.sharedPublicKey);

  const parts: Record<string, number> = {};
  parts.keygen_fixed_ms = (
    await time(
      () => {
        const o2 = (BigInt(`0x${Buffer.from(rng(32)).toString("hex")}`) % (N - 1n)) + 1n;
        const ks = sid();
        const share = holderKeyUpdate({
          sessionId: ks,
          share: scalarBytes(o2),
          sharedPublicKey: P,
          paillier: pool.pop()!,
          ringPedersen: view.ringPedersen,
          rng,
        });
        // s2 = s1·o1·o2⁻¹ keeps P = s2·O2 (the rotation arithmetic itself is negligible).
        const big = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString("hex")}`);
        const s2 = (((big(se.share) * big(owner.share)) % N) * secp256k1.Point.Fn.inv(o2)) % N;
        const { msg } = signerKeyUpdate({
          sessionId: ks,
          share: scalarBytes(s2),
          holderShare: share.msg,
          sharedPublicKey: P,
          ringPedersen: instance.ringPedersenPublic,
          rng,
        });
        holderKeyUpdateFinish(share.state, msg);
      },
      { runs: RUNS, warmup: 2 },
    )
  ).median;

  const digest = rng(32);
  parts.two_party_signature_ms = (
    await time(
      () => {
        const id = sid();
        const a = holderSignCommit(owner, { sessionId: id, digest, rng });
        const b = signerSignStart(se, { sessionId: id, digest, ownerCommit: a.msg, rng });
        const opening = holderSignNonce(owner, a.state, b.msg, { rng });
        const { c3, statement } = signerSignPartial(se, b.session, opening, { rng });
        const partial = {
          partialSignature: writeNat(c3),
          statementSignature: instance.signPartial(statement),
        };
        if (!holderSignFinish(owner, a.state, partial, { instanceKey: view.instanceKey }).ok)
          throw new Error("floor: signature");
      },
      { runs: RUNS },
    )
  ).median;

  const k = secp256k1.utils.randomSecretKey();
  const K = secp256k1.getPublicKey(k, true);
  const message = rng(2000);
  parts.ecies_ms = (
    await time(
      () => {
        for (const m of [rng(32), message, rng(32)]) decrypt(k, encrypt(K, m));
      },
      { runs: RUNS },
    )
  ).median;

  const c = secp256k1.utils.randomSecretKey();
  const C = secp256k1.getPublicKey(c, true);
  const state = initialState(C);
  parts.statechain_tx_ms = (
    await time(() => verifyStatechainTx(signTransfer(c, state, K, rng), C, state), { runs: RUNS })
  ).median;

  const ca = SimulatorCa.open(path.join(mkdtempSync(path.join(tmpdir(), "floor-")), "sim-ca"));
  const provider = new SimulatorProvider({ ca, pcrs: measure() });
  const certCache = new CertCache();
  const roots = { aws: false, simulatorRootPem: ca.rootPem() };
  parts.attestations_ms = (
    await time(
      async () => {
        for (let i = 0; i < 2; i++) {
          const nonce = rng(32);
          const doc = await provider.attest({ nonce, userData: rng(32), publicKey: K });
          if (!verifyAttestation(doc, { roots, expectedNonce: nonce, certCache }).valid)
            throw new Error("floor: attestation");
        }
      },
      { runs: RUNS },
    )
  ).median;

  parts.backup_signatures_ms = (
    await time(
      () => {
        const sig = secp256k1.sign(digest, k, { prehash: false, lowS: true });
        for (let i = 0; i < 2; i++) secp256k1.verify(sig, digest, K, { prehash: false, lowS: true });
      },
      { runs: RUNS },
    )
  ).median;

  const total = Math.round(Object.values(parts).reduce((a, b) => a + b, 0) * 100) / 100;
  return { total, runs: RUNS, parts };
}
