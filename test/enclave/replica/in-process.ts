// Replica members in one process, for the member tests and the rejoin bench: each an EnclaveCore with its own
// member key, attested by one simulator CA, and an in-memory "host" carrying their sealed envelopes (a turn of
// the event loop later, as a socket would), except to or from a member in `cut`.
import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { SimulatorProvider } from "../../../attestation/providers/simulator.ts";
import { SimulatorCa } from "../../../attestation/sim-ca.ts";
import { EnclaveCore, type EnclaveDeps } from "../../../enclave/core.ts";
import { createMemberKeys } from "../../../enclave/instance.ts";
import { ActionLog } from "../../../enclave/log.ts";
import { measure } from "../../../enclave/measure.ts";
import { attestWith } from "../../../enclave/replica/channel.ts";
import { ReplicaMember, type Timing } from "../../../enclave/replica/member.ts";

export interface Running {
  id: string;
  member: ReplicaMember;
  core: EnclaveCore;
  /** Why the member wiped itself, once it has. */
  wiped?: string;
}

export function inProcessSet(opts: {
  timing: Timing;
  tickMs: number;
  onSend?: (payloadBytes: number) => void;
}) {
  const ca = SimulatorCa.open(mkdtempSync(path.join(tmpdir(), "replica-in-process-")));
  const pcrs = measure();
  const provider = new SimulatorProvider({ ca, pcrs });
  const members = new Map<string, Running>();
  const cut = new Set<string>();
  const timers: NodeJS.Timeout[] = [];
  const start = (): Running => {
    const keys = createMemberKeys();
    const id = keys.publicKey.toString("hex");
    const core = new EnclaveCore({
      log: new ActionLog(),
      now: Date.now,
      instanceId: randomBytes(16),
    } as unknown as EnclaveDeps);
    const r = { id, core } as Running;
    r.member = new ReplicaMember({
      id,
      channel: {
        configId: Buffer.from("in-process"),
        signer: keys,
        attest: attestWith(provider),
        admission: { mode: "simulator", pcrs, simulatorRootPem: ca.rootPem() },
        now: Date.now,
      },
      timing: opts.timing,
      now: Date.now,
      random: (max) => randomInt(max),
      send: (to, payload) => {
        opts.onSend?.(payload.length);
        if (cut.has(id) || cut.has(to)) return;
        const copy = Buffer.from(payload);
        setImmediate(() => {
          const dest = members.get(to);
          if (dest && !cut.has(to) && !dest.wiped) void dest.member.receive(id, copy);
        });
      },
      onWiped: (why) => {
        r.wiped = why;
      },
      warn: () => undefined,
    });
    r.member.attach(core);
    members.set(id, r);
    timers.push(setInterval(() => r.member.tick(Date.now()), opts.tickMs));
    return r;
  };
  return {
    start,
    members,
    cut,
    stop: () => {
      for (const t of timers) clearInterval(t);
    },
  };
}
