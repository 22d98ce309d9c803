// The enclave replica set as the host runs it (DESIGN.md 4.1): N enclave processes started with --replica, the
// host carrying their sealed envelopes (it can read none of them), founding the set, restarting a member that
// dies and having the leader admit the new process, and sending every call to the leader.
//
// To the rest of the host the set is one enclave (EnclaveHandle): its client routes each call to the leader and,
// when a member answers NOT_LEADER or cannot be reached, finds the leader again and retries until the call's
// deadline. Its status is the leader's, whose instance id is the set id (the founder's, which joiners take with the
// state): coins live as long as the set does, whichever members come and go, so the host's "the enclave
// restarted, its shares are gone" check (a new instance id) fires only when the set itself is new.
import { readFileSync } from "node:fs";
import { type ClientDuplexStream, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import type {
  EnclaveServiceClient,
  GetStatusResponse,
  PeersRequest,
  PeersResponse,
  ReplicaStatus,
} from "../proto/gen/enclave.ts";
import { unary } from "../proto/unary.ts";
import { type EnclaveHandle, startEnclave } from "./enclave-process.ts";
import type { Logger } from "./log.ts";

export interface ReplicaSetOptions {
  replicas: number;
  /** Socket of member i: `${socketPath}.${i}`. */
  socketPath: string;
  startTimeoutMs: number;
  projectRoot: string;
  args?: string[];
  log: Logger;
  /**
   * Simulator tests only: a file holding the slots (comma-separated) whose envelopes the host stops carrying, a
   * partition by the transport; read every 100 ms.
   */
  partitionFile?: string;
}

interface Member {
  slot: number;
  handle: EnclaveHandle;
  id: string;
  stream?: ClientDuplexStream<PeersRequest, PeersResponse>;
  status?: ReplicaStatus;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isServiceError = (e: unknown): e is ServiceError =>
  typeof e === "object" && e !== null && typeof (e as ServiceError).code === "number";

/** Whether a call failed because this member does not lead (or is gone), so another may answer. */
function retryElsewhere(err: unknown): boolean {
  if (!isServiceError(err)) return false;
  return err.code === status.UNAVAILABLE || (err.details ?? "").startsWith("[NOT_LEADER]");
}

export async function startReplicaSet(o: ReplicaSetOptions): Promise<EnclaveHandle> {
  const slots: Array<Member | undefined> = [];
  const cut = new Set<number>();
  let leaderId = "";
  let stopping = false;
  let setId = "";

  const byId = (id: string) => slots.find((m) => m?.id === id);

  const route = (from: Member, res: PeersResponse) => {
    const e = res.envelope;
    if (!e || e.from !== from.id || cut.has(from.slot)) return;
    const to = byId(e.to);
    if (!to || cut.has(to.slot)) return;
    to.stream?.write({ envelope: e });
  };

  const openStream = (m: Member) => {
    const s = m.handle.client.peers(new Metadata());
    m.stream = s;
    s.on("data", (res: PeersResponse) => route(m, res));
    s.on("error", () => {
      if (m.stream === s) m.stream = undefined;
    });
    s.on("end", () => {
      if (m.stream === s) m.stream = undefined;
    });
  };

  const spawnMember = async (slot: number): Promise<Member> => {
    const handle = await startEnclave({
      socketPath: `${o.socketPath}.${slot}`,
      spawn: true,
      startTimeoutMs: o.startTimeoutMs,
      projectRoot: o.projectRoot,
      args: [...(o.args ?? []), "--replica"],
      log: o.log,
      maxMessageBytes: 64 << 20,
    });
    let st = (await handle.status()).replica;
    // The member id is the instance key, made at boot: the first answers may come before it.
    for (let i = 0; !st?.memberId && i < 200; i++) {
      await sleep(50);
      st = (await handle.status()).replica;
    }
    if (!st?.memberId) throw new Error(`enclave ${slot} reports no replica member id`);
    const m: Member = { slot, handle, id: st.memberId, status: st };
    slots[slot] = m;
    openStream(m);
    handle.child?.once("exit", () => {
      if (slots[slot] === m) slots[slot] = undefined;
      if (leaderId === m.id) leaderId = "";
      if (!stopping) void restartSlot(slot);
    });
    return m;
  };

  const restartSlot = async (slot: number) => {
    for (let attempt = 0; !stopping; attempt++) {
      try {
        const m = await spawnMember(slot);
        o.log.warn(
          { slot, member: m.id.slice(0, 16) },
          "replica member restarted; asking the leader to admit it",
        );
        await admit(m);
        return;
      } catch (err) {
        o.log.error({ slot, err: (err as Error).message }, "replica member restart failed; retrying");
        await sleep(Math.min(5000, 200 * 2 ** attempt));
      }
    }
  };

  const refresh = async (): Promise<string> => {
    let best: { id: string; term: bigint } | undefined;
    await Promise.all(
      slots.map(async (m) => {
        if (!m) return;
        try {
          const st = (await m.handle.status(1000)).replica;
          m.status = st;
          if (st?.role === "leader" && (!best || st.term > best.term)) best = { id: m.id, term: st.term };
        } catch {
          // unreachable: not the leader for now
        }
      }),
    );
    leaderId = best?.id ?? "";
    return leaderId;
  };

  const leader = async (deadline = Date.now() + 10_000): Promise<Member> => {
    for (;;) {
      const m = leaderId ? byId(leaderId) : undefined;
      if (m) return m;
      await refresh();
      const again = leaderId ? byId(leaderId) : undefined;
      if (again) return again;
      if (await reform()) continue;
      if (Date.now() > deadline) {
        const e = new Error("the enclave replica set has no leader (a majority of its members is down)");
        throw Object.assign(e, { code: status.UNAVAILABLE, details: `[NO_LEADER] ${e.message}` });
      }
      await sleep(50);
    }
  };

  /**
   * Every member alive is in no set: the set is gone with all its shares (DESIGN.md 4.1, "losing all members").
   * Founds a new one, with a new set id, so the host marks the old set's coins exit-by-backup.
   */
  let reforming: Promise<boolean> | undefined;
  const reform = (): Promise<boolean> => {
    reforming ??= reformOnce().finally(() => {
      reforming = undefined;
    });
    return reforming;
  };
  const reformOnce = async (): Promise<boolean> => {
    const live = slots.filter((m): m is Member => m !== undefined);
    if (live.length === 0) return false;
    // Only on fresh answers from every live member: a member that does not answer, or answers from a set,
    // means the set may live on.
    const roles = await Promise.all(
      live.map((m) =>
        m.handle.status(1000).then(
          (st) => st.replica?.role,
          () => undefined,
        ),
      ),
    );
    if (!roles.every((r) => r === "none")) return false;
    const first = live[0]!;
    const founded = await unary(first.handle.client, first.handle.client.foundReplicaSet, {});
    const previous = setId;
    setId = founded.replica?.setId ?? "";
    leaderId = first.id;
    o.log.error(
      { previous, set: setId },
      "every replica member was lost: founded a new set; the old set's coins can only exit by backup",
    );
    for (const m of live.slice(1)) void admit(m).catch(() => undefined);
    return true;
  };

  const admit = async (m: Member) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const l = await leader(deadline);
        await unary(l.handle.client, l.handle.client.addReplica, { memberId: m.id }, { deadlineMs: 15_000 });
        return;
      } catch (err) {
        if (!retryElsewhere(err) || Date.now() > deadline) throw err;
        leaderId = "";
        await sleep(100);
      }
    }
  };

  // Start every member, found the set on the first, and have it admit the others.
  try {
    for (let i = 0; i < o.replicas; i++) await spawnMember(i);
    const first = slots[0]!;
    const founded = await unary(first.handle.client, first.handle.client.foundReplicaSet, {});
    setId = founded.replica?.setId ?? "";
    leaderId = first.id;
    for (let i = 1; i < o.replicas; i++) await admit(slots[i]!);
  } catch (err) {
    stopping = true;
    await Promise.all(slots.map((m) => m?.handle.stop()));
    throw err;
  }

  if (o.partitionFile) {
    const file = o.partitionFile;
    const poll = setInterval(() => {
      let text = "";
      try {
        text = readFileSync(file, "utf8");
      } catch {
        // no file: no partition
      }
      cut.clear();
      for (const n of text.split(",")) if (/^\d+$/.test(n.trim())) cut.add(Number(n));
    }, 100);
    poll.unref();
  }

  /** The leader's client for each call, found again when a member answers NOT_LEADER or is gone. */
  const client = new Proxy(slots[0]!.handle.client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (
        typeof value !== "function" ||
        typeof prop !== "string" ||
        prop === "close" ||
        prop === "getChannel"
      ) {
        return value;
      }
      return (
        req: unknown,
        meta: Metadata,
        opts: { deadline?: number },
        cb: (e: unknown, r: unknown) => void,
      ) => {
        const deadline = typeof opts?.deadline === "number" ? opts.deadline : Date.now() + 30_000;
        const attempt = async (): Promise<unknown> => {
          for (;;) {
            const l = await leader(deadline);
            const c = l.handle.client as unknown as Record<string, (...a: unknown[]) => unknown>;
            try {
              return await new Promise((resolve, reject) =>
                c[prop]!.call(c, req, meta, { deadline }, (e: unknown, r: unknown) =>
                  e ? reject(e) : resolve(r),
                ),
              );
            } catch (err) {
              if (!retryElsewhere(err) || Date.now() > deadline) throw err;
              if (leaderId === l.id) leaderId = "";
              await sleep(20);
            }
          }
        };
        attempt().then(
          (r) => cb(null, r),
          (e) => cb(e, undefined),
        );
        return undefined;
      };
    },
  }) as EnclaveServiceClient;

  const statusOf = async (deadlineMs = 2000): Promise<GetStatusResponse> =>
    (await leader(Date.now() + deadlineMs)).handle.status(deadlineMs);

  return {
    client,
    status: statusOf,
    get child() {
      return slots.find((m) => m?.id === leaderId)?.handle.child;
    },
    async stop() {
      stopping = true;
      for (const m of slots) m?.stream?.end();
      await Promise.all(slots.map((m) => m?.handle.stop()));
    },
  };
}
