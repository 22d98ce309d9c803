// The replica member of an enclave process (main.ts --replica): its channel configuration (our PCRs, the root we
// trust, the attested policy as the set's context) and the Peers stream the host carries envelopes on.
import { randomInt } from "node:crypto";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { AttestationProvider } from "../../attestation/providers/provider.ts";
import type { PeersRequest, PeersResponse } from "../../proto/gen/enclave.ts";
import { hex } from "../core.ts";
import type { MemberKeys } from "../instance.ts";
import { type EnclavePolicy, policyHash } from "../policy.ts";
import { attestWith } from "./channel.ts";
import { DEFAULT_TIMING, ReplicaMember } from "./member.ts";

/**
 * Sizes, each inside the next: a Raft message (a snapshot of at most 48 MiB, raft-codec LIMITS: ~30,000 coins)
 * < a channel message's plaintext (56 MiB) < a sealed envelope (60 MiB) < a gRPC message (64 MiB, server.ts).
 */
export const MAX_PLAINTEXT_BYTES = 56 << 20;
export const MAX_ENVELOPE_BYTES = 60 << 20;

export function replicaMember(o: {
  keys: MemberKeys;
  provider: AttestationProvider;
  pcrs: { pcr0: Buffer; pcr1: Buffer; pcr2: Buffer };
  policy: EnclavePolicy;
  simulatorRootPem: string;
  mode: string;
  /** The enclave process's structured log (main.ts). */
  log: (level: number, msg: string, extra?: Record<string, unknown>) => void;
}) {
  const log = o.log;
  const id = hex(o.keys.publicKey);
  let stream: ServerDuplexStream<PeersRequest, PeersResponse> | undefined;
  const member = new ReplicaMember({
    id,
    channel: {
      // Members must enforce the same policy: its hash is the channel's context, so a member with another
      // policy cannot complete a handshake.
      configId: policyHash(o.policy),
      signer: o.keys,
      attest: attestWith(o.provider),
      admission: {
        mode: o.mode === "nitro" ? "nitro" : "simulator",
        pcrs: o.pcrs,
        simulatorRootPem: o.mode === "nitro" ? undefined : o.simulatorRootPem,
      },
      now: Date.now,
      maxMessageBytes: MAX_PLAINTEXT_BYTES,
    },
    timing: DEFAULT_TIMING,
    now: Date.now,
    random: (max) => randomInt(max),
    send: (to, payload) => {
      stream?.write({ envelope: { from: id, to, payload: Buffer.from(payload) } });
    },
    onWiped: (why) => {
      log(50, "replica member wiped its state and stops", { why });
      setTimeout(() => process.exit(3), 50);
    },
    warn: (msg, extra) => log(40, msg, extra),
    info: (msg, extra) => log(30, msg, { member: id.slice(0, 16), ...extra }),
  });
  /** The host's stream of envelopes; a newer stream replaces an older one. */
  const serveStream = (call: ServerDuplexStream<PeersRequest, PeersResponse>) => {
    stream?.end();
    stream = call;
    call.on("data", (req: PeersRequest) => {
      const e = req.envelope;
      if (!e || e.to !== id || e.payload.length > MAX_ENVELOPE_BYTES) return;
      void member.receive(e.from, e.payload);
    });
    const drop = () => {
      if (stream === call) stream = undefined;
    };
    call.on("end", () => {
      drop();
      call.end();
    });
    call.on("error", drop);
    call.on("cancelled", drop);
  };
  return { member, serveStream, tickMs: Math.max(10, Math.floor(DEFAULT_TIMING.heartbeatMs / 2)) };
}
