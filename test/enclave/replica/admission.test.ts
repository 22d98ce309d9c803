// Admission of a replica peer (issue #23) against real documents: simulator documents made by a SimulatorCa in a
// temp dir, and the recorded AWS Nitro documents for nitro mode. Each refusal is matched on its code.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { decodeDocument } from "../../../attestation/document.ts";
import { type SimulatedPcrs, SimulatorProvider } from "../../../attestation/providers/simulator.ts";
import { SimulatorCa } from "../../../attestation/sim-ca.ts";
import {
  type AdmissionPolicy,
  admitPeer,
  type PeerEvidence,
  SAME_RELEASE,
} from "../../../enclave/replica/admission.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import { systemRng } from "../../../protocol/rng.ts";
import { insideMs, doc as nitroDoc } from "../../attestation/fixtures.ts";

const ca = SimulatorCa.open(mkdtempSync(path.join(tmpdir(), "admission-")));
const otherCa = SimulatorCa.open(mkdtempSync(path.join(tmpdir(), "admission-other-")));
const OURS = {
  pcr0: new Uint8Array(48).fill(0x10),
  pcr1: new Uint8Array(48).fill(0x11),
  pcr2: new Uint8Array(48).fill(0x12),
};
const policy: AdmissionPolicy = { mode: "simulator", pcrs: OURS, simulatorRootPem: ca.rootPem() };
const bytes = (n: number) => Buffer.from(systemRng(n));
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();

/** A peer's bound evidence: a document from `provider` over (user_data, public_key, nonce). */
async function evidence(
  opts: { ca?: SimulatorCa; pcrs?: SimulatedPcrs; now?: () => number } = {},
): Promise<PeerEvidence> {
  const provider = new SimulatorProvider({
    ca: opts.ca ?? ca,
    pcrs: opts.pcrs ?? OURS,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const instanceKey = bytes(32);
  const userData = sha256(bytes(32));
  const nonce = bytes(32);
  const document = await provider.attest({ userData, publicKey: instanceKey, nonce });
  return { document, instanceKey, userData, nonce };
}

function refusedWith(code: string, f: () => unknown, what: string): void {
  assert.throws(
    f,
    (e: unknown) => {
      assert.ok(e instanceof ProtocolError, `${what}: a ProtocolError, got ${String(e)}`);
      assert.equal(e.code, code, `${what}: code (message: ${e.message})`);
      assert.ok(e.message.length > 0, `${what}: a plain message`);
      return true;
    },
    what,
  );
}

test("a peer with our PCRs whose document binds its instance key and the handshake is admitted", async () => {
  const ev = await evidence();
  const peer = admitPeer(ev, policy, Date.now());
  assert.deepEqual(peer.instanceKey, Buffer.from(ev.instanceKey), "the attested instance key");
  assert.deepEqual(Buffer.from(peer.pcrs.pcr0), Buffer.from(OURS.pcr0), "its PCR0");
  assert.deepEqual(Buffer.from(peer.pcrs.pcr2), Buffer.from(OURS.pcr2), "its PCR2");
  assert.equal(peer.release, SAME_RELEASE, "our own release");
  assert.equal(peer.simulator, true, "said to be a simulator peer");
});

test("a peer with different PCRs is refused, unless its release is accepted (the #24 hook)", async () => {
  for (const i of [0, 1, 2] as const) {
    const pcrs = { ...OURS, [`pcr${i}`]: new Uint8Array(48).fill(0x20 + i) };
    const ev = await evidence({ pcrs });
    refusedWith("PEER_PCRS", () => admitPeer(ev, policy, Date.now()), `PCR${i} differs`);
    const accepted = { ...policy, acceptedReleases: [{ name: "v2", ...pcrs }] };
    assert.equal(admitPeer(ev, accepted, Date.now()).release, "v2", `PCR${i}: admitted as the accepted v2`);
  }
});

test("a document under a root this mode does not trust is refused", async () => {
  const foreign = await evidence({ ca: otherCa });
  refusedWith("PEER_ROOT", () => admitPeer(foreign, policy, Date.now()), "another simulator root");
  const ours = await evidence();
  refusedWith(
    "PEER_ROOT",
    () => admitPeer(ours, { mode: "nitro", pcrs: OURS }, Date.now()),
    "nitro mode never trusts the simulator root",
  );
  const aws = { ...ours, document: nitroDoc("nondebug") };
  refusedWith(
    "PEER_ROOT",
    () => admitPeer(aws, policy, insideMs("nondebug")),
    "simulator mode trusts only the simulator root given, not AWS",
  );
});

test("a stale document, or one dated in the future, is refused", async () => {
  const old = await evidence({ now: () => Date.now() - 10 * 60_000 });
  refusedWith("PEER_STALE", () => admitPeer(old, policy, Date.now()), "ten minutes old");
  assert.equal(
    admitPeer(old, { ...policy, maxAgeMs: 11 * 60_000 }, Date.now()).release,
    SAME_RELEASE,
    "the same document passes under a longer maximum age",
  );
  const future = await evidence({ now: () => Date.now() + 10 * 60_000 });
  refusedWith("PEER_STALE", () => admitPeer(future, policy, Date.now()), "ten minutes ahead");
});

test("a document that does not bind the presented instance key, transcript and nonce is refused", async () => {
  const ev = await evidence();
  const flip = (b: Uint8Array) => {
    const c = Buffer.from(b);
    c[5]! ^= 1;
    return c;
  };
  refusedWith(
    "PEER_BINDING",
    () => admitPeer({ ...ev, instanceKey: flip(ev.instanceKey) }, policy, Date.now()),
    "another instance key",
  );
  refusedWith(
    "PEER_BINDING",
    () => admitPeer({ ...ev, userData: flip(ev.userData) }, policy, Date.now()),
    "another transcript",
  );
  refusedWith(
    "PEER_BINDING",
    () => admitPeer({ ...ev, nonce: flip(ev.nonce) }, policy, Date.now()),
    "another nonce",
  );
  const unbound = await new SimulatorProvider({ ca, pcrs: OURS }).attest({ userData: ev.userData });
  refusedWith(
    "PEER_BINDING",
    () => admitPeer({ ...ev, document: unbound }, policy, Date.now()),
    "a document with no public_key",
  );
});

test("malformed or altered documents are refused as PEER_ATTESTATION", async () => {
  const ev = await evidence();
  refusedWith(
    "PEER_ATTESTATION",
    () => admitPeer({ ...ev, document: bytes(200) }, policy, Date.now()),
    "random bytes",
  );
  refusedWith(
    "PEER_ATTESTATION",
    () => admitPeer({ ...ev, document: ev.document.subarray(0, 100) }, policy, Date.now()),
    "truncated",
  );
  const sig = Buffer.from(ev.document);
  sig[sig.length - 3]! ^= 0x40; // inside the ES384 signature, the last field
  refusedWith("PEER_ATTESTATION", () => admitPeer({ ...ev, document: sig }, policy, Date.now()), "signature");
});

test("nitro mode: the AWS root is accepted, a debug enclave never, and PCRs still decide", () => {
  const nondebug = nitroDoc("nondebug");
  const d = decodeDocument(nondebug);
  const theirs = { pcr0: d.pcrs.get(0)!, pcr1: d.pcrs.get(1)!, pcr2: d.pcrs.get(2)! };
  const ev = { document: nondebug, instanceKey: bytes(32), userData: bytes(32), nonce: bytes(32) };
  const nitro: AdmissionPolicy = { mode: "nitro", pcrs: OURS };
  refusedWith(
    "PEER_PCRS",
    () => admitPeer(ev, nitro, insideMs("nondebug")),
    "a real enclave of another release",
  );
  // With its release accepted, the root and PCRs pass, and the binding (which this recorded document lacks) decides.
  refusedWith(
    "PEER_BINDING",
    () => admitPeer(ev, { ...nitro, acceptedReleases: [{ name: "r", ...theirs }] }, insideMs("nondebug")),
    "its release accepted, the binding is checked",
  );
  const debug = { ...ev, document: nitroDoc("debug") };
  refusedWith("PEER_DEBUG", () => admitPeer(debug, nitro, insideMs("debug")), "a real debug enclave");
  const zero = new Uint8Array(48);
  refusedWith(
    "PEER_DEBUG",
    () =>
      admitPeer(
        debug,
        { ...nitro, acceptedReleases: [{ name: "dbg", pcr0: zero, pcr1: zero, pcr2: zero }] },
        insideMs("debug"),
      ),
    "a debug enclave even when zero PCRs are listed as a release",
  );
});

test("simulator mode admits a zero-PCR peer only when ours are zero too", async () => {
  const zero = { pcr0: new Uint8Array(48), pcr1: new Uint8Array(48), pcr2: new Uint8Array(48) };
  const ev = await evidence({ pcrs: zero });
  refusedWith("PEER_PCRS", () => admitPeer(ev, policy, Date.now()), "a debug peer beside our measured code");
  assert.equal(
    admitPeer(ev, { ...policy, pcrs: zero }, Date.now()).release,
    SAME_RELEASE,
    "two simulator enclaves without measurements",
  );
});

test("an unusable policy is refused as ADMISSION_CONFIG before any document is looked at", async () => {
  const ev = await evidence();
  refusedWith(
    "ADMISSION_CONFIG",
    () => admitPeer(ev, { mode: "simulator", pcrs: OURS }, Date.now()),
    "simulator mode without a root",
  );
  refusedWith(
    "ADMISSION_CONFIG",
    () => admitPeer(ev, { mode: "nitro", pcrs: OURS, simulatorRootPem: ca.rootPem() }, Date.now()),
    "nitro mode with a simulator root",
  );
  const zero = { pcr0: new Uint8Array(48), pcr1: OURS.pcr1, pcr2: OURS.pcr2 };
  refusedWith(
    "ADMISSION_CONFIG",
    () => admitPeer(ev, { mode: "nitro", pcrs: zero }, Date.now()),
    "nitro mode on a debug enclave",
  );
});
