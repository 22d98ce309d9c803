// A deterministic, seeded simulation of the replica set (enclave/replica/raft.ts) under a hostile host: N nodes
// whose messages the "host" drops, delays, duplicates and reorders, nodes that crash (a restarted enclave comes
// back EMPTY under a new id and must be added), partitions, and per-node clock drift within ±1%. Every message
// goes through the byte codec. After every step the invariants of RAFT.md are checked; a failure throws an Error
// naming the seed and step, reproducible with SEED=<n>. The product code sees only each node's `random(max)`.
import {
  createNode,
  decodeMessage,
  encodeMessage,
  type Message,
  type NodeId,
  type RaftNode,
  type StateMachine,
  type Status,
} from "../../../enclave/replica/raft.ts";

/** splitmix32: a small, fast, seedable PRNG. */
export function prng(seed: number): { next(): number; int(max: number): number; chance(p: number): boolean } {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
  return { next, int: (max) => Math.floor(next() * max), chance: (p) => next() < p };
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** A command: key update of `coin` from `from` to from+1 with a new 32-byte secret. */
export function keyUpdate(coin: number, from: number, secret: Uint8Array): Uint8Array {
  const b = new Uint8Array(37);
  b[0] = coin;
  new DataView(b.buffer).setUint32(1, from);
  b.set(secret, 5);
  return b;
}

/** The simulated enclave state: coin → {epoch, secret}; secrets it drops are zeroed. */
export class CoinMachine implements StateMachine {
  coins = new Map<number, { epoch: number; secret: Uint8Array }>();
  onApply: (index: number, data: Uint8Array) => void = () => {};

  apply(e: { index: number; term: number; data: Uint8Array }): void {
    this.onApply(e.index, e.data);
    const coin = e.data[0]!;
    const from = new DataView(e.data.buffer, e.data.byteOffset).getUint32(1);
    const cur = this.coins.get(coin) ?? { epoch: 0, secret: new Uint8Array(32) };
    if (cur.epoch !== from) return; // a stale or repeated update is ignored
    cur.secret.fill(0);
    this.coins.set(coin, { epoch: from + 1, secret: e.data.slice(5, 37) });
  }
  snapshot(): Uint8Array {
    const out = new Uint8Array(this.coins.size * 37);
    let o = 0;
    for (const [coin, { epoch, secret }] of [...this.coins].sort((a, b) => a[0] - b[0])) {
      out[o] = coin;
      new DataView(out.buffer).setUint32(o + 1, epoch);
      out.set(secret, o + 5);
      o += 37;
    }
    return out;
  }
  restore(snapshot: Uint8Array): void {
    this.wipe();
    for (let o = 0; o < snapshot.length; o += 37) {
      const epoch = new DataView(snapshot.buffer, snapshot.byteOffset).getUint32(o + 1);
      this.coins.set(snapshot[o]!, { epoch, secret: snapshot.slice(o + 5, o + 37) });
    }
  }
  wipe(): void {
    for (const c of this.coins.values()) c.secret.fill(0);
    this.coins.clear();
  }
  digest(): string {
    return [...this.coins]
      .sort((a, b) => a[0] - b[0])
      .map(([c, v]) => `${c}:${v.epoch}:${hex(v.secret)}`)
      .join(",");
  }
}

export interface SimOptions {
  seed: number;
  nodes: 3 | 5;
  steps: number;
  /** "safe": faults never take a majority of the configuration down (liveness is checked at the end);
   *  "wild": any fault at any time (only safety is checked). */
  mode: "safe" | "wild";
  /** Debugging: called with a line for each delivery and each step's roles. */
  trace?: (line: string) => void;
}
export interface SimResult {
  answered: number;
  proposals: number;
  wipes: number;
  crashes: number;
  partitions: number;
  lost: boolean;
}

const TICK = 10;
const RAFT = { electionTimeoutMs: 60, heartbeatMs: 20, leaseMs: 500, removeUnreachableAfterMs: 300 };
const DRIFT = 0.01;
const LEASE_BOUND = RAFT.leaseMs / (1 - DRIFT) + TICK + 1; // real ms: lease on the slowest clock, one tick
const COINS = 3;

interface SimNode {
  id: NodeId;
  node: RaftNode;
  sm: CoinMachine;
  rate: number;
  offset: number;
  alive: boolean;
}
interface InFlight {
  at: number;
  seq: number;
  from: NodeId;
  to: NodeId;
  bytes: Uint8Array;
}
interface Answered {
  coin: number;
  epoch: number;
  index: number;
  term: number;
  /** Hex of the secret of the epoch before. */
  oldSecret: string | undefined;
  at: number;
  config: Set<NodeId>;
}
interface Client {
  coin: number;
  epoch: number;
  secret: Uint8Array | undefined;
  pending?: {
    data: Uint8Array;
    hex: string;
    secret: Uint8Array;
    at: number;
    leader?: NodeId;
    term: number;
    index: number;
  };
}

export function simulate(o: SimOptions): SimResult {
  const rnd = prng(o.seed);
  const nodes = new Map<NodeId, SimNode>();
  let t = 0;
  let step = 0;
  let seq = 0;
  let nextId = 0;
  let queue: InFlight[] = [];
  const res: SimResult = { answered: 0, proposals: 0, wipes: 0, crashes: 0, partitions: 0, lost: false };
  const fail = (what: string): never => {
    throw new Error(
      `raft sim: seed=${o.seed} step=${step} (t=${t}ms, ${o.nodes} nodes, ${o.mode}): ${what}\n` +
        `  reproduce: SEED=${o.seed} node --import tsx --test test/enclave/replica/raft-sim.test.ts`,
    );
  };
  const local = (n: SimNode, at: number) => n.offset + at * (1 + n.rate);
  const appliedData = new Map<number, string>();
  const digestAt = new Map<number, string>();
  const leaderOfTerm = new Map<number, NodeId>();
  /** "a|b" → the last step time a and b were both up and on the same side. */
  const lastReach = new Map<string, number>();
  const reachedMajority = new Map<NodeId, number>();
  const answered: Answered[] = [];
  const clients: Client[] = Array.from({ length: COINS }, (_, coin) => ({
    coin,
    epoch: 0,
    secret: undefined,
  }));
  const pendingJoin: NodeId[] = [];
  let side = new Map<NodeId, number>(); // partition: node → side (absent: side 0)
  let healAt = 0;
  let net = { drop: rnd.next() * 0.1, dup: 0.03, delay: 20 };
  const deadSince = new Map<NodeId, number>();

  function spawn(bootstrap: NodeId[] | undefined, id = `n${nextId++}`): SimNode {
    const sm = new CoinMachine();
    const n: SimNode = {
      id,
      sm,
      node: undefined as unknown as RaftNode,
      rate: (rnd.next() * 2 - 1) * DRIFT,
      offset: rnd.int(10_000),
      alive: true,
    };
    const seedRandom = prng(rnd.int(2 ** 31));
    n.node = createNode(
      { id, ...RAFT, random: (m) => seedRandom.int(m), maxDrift: DRIFT },
      sm,
      bootstrap ? { members: bootstrap } : undefined,
      local(n, t),
    );
    sm.onApply = (index, data) => {
      const h = hex(data);
      const seen = appliedData.get(index);
      if (seen === undefined) appliedData.set(index, h);
      else if (seen !== h) fail(`(b) ${id} applied different data at index ${index}`);
    };
    nodes.set(id, n);
    return n;
  }

  const ids = Array.from({ length: o.nodes }, (_, i) => `n${i}`);
  nextId = o.nodes;
  for (const id of ids) spawn(ids, id);
  for (const id of ids) reachedMajority.set(id, 0); // the grace at start

  let version = 0; // bumped whenever a node is called; statuses are cached in between
  const cache = new Map<NodeId, { v: number; s: Status }>();
  const stat = (n: SimNode): Status => {
    const c = cache.get(n.id);
    if (c && c.v === version) return c.s;
    const s = n.node.status();
    cache.set(n.id, { v: version, s });
    return s;
  };
  const live = () => [...nodes.values()].filter((n) => n.alive && stat(n).role !== "wiped");
  const reachable = (a: NodeId, b: NodeId) => (side.get(a) ?? 0) === (side.get(b) ?? 0);

  function send(from: NodeId, out: { messages: { to: NodeId; msg: Message }[]; wiped?: boolean }): void {
    version++;
    if (out.wiped) res.wipes++;
    for (const { to, msg } of out.messages) {
      const bytes = encodeMessage(msg);
      if (msg.type === "snapshot") msg.data.fill(0); // the transport's copy is all that leaves
      if (rnd.chance(net.drop)) continue;
      const copies = rnd.chance(net.dup) ? 2 : 1;
      for (let i = 0; i < copies; i++)
        queue.push({
          at: t + 1 + rnd.int(net.delay),
          seq: seq++,
          from,
          to,
          bytes: i ? bytes.slice() : bytes,
        });
    }
  }

  function deliver(m: InFlight): void {
    const to = nodes.get(m.to);
    const from = nodes.get(m.from);
    if (!to?.alive || !from?.alive || !reachable(m.from, m.to)) return;
    const msg = decodeMessage(m.bytes);
    o.trace?.(
      `${m.at} ${m.from}->${m.to} ${JSON.stringify(msg, (k, v) => (k === "data" && v ? `<${v.length}>` : v))}`,
    );
    const out = to.node.receive(m.from, msg, local(to, m.at));
    if (msg.type === "snapshot" && msg.data.some((b) => b !== 0))
      fail(`${m.to} kept a snapshot buffer unzeroed`);
    if (msg.type === "append") {
      const held = new Set(to.node.entries());
      for (const e of msg.entries)
        if (!held.has(e) && e.data?.some((b) => b !== 0)) fail(`${m.to} dropped entry ${e.index} unzeroed`);
    }
    send(m.to, out);
  }

  function believedLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of live()) {
      const s = stat(n);
      if (s.role === "leader" && (!best || s.term > stat(best).term)) best = n;
    }
    return best;
  }

  function faults(): void {
    const healthy = isHealthy();
    if (side.size && t >= healAt) side = new Map();
    if (rnd.chance(0.004) && (o.mode === "wild" || (healthy && !side.size))) {
      const victims = live().filter((n) => stat(n).role !== "wiped");
      const v = victims[rnd.int(victims.length)];
      if (v) {
        v.alive = false;
        res.crashes++;
      }
    }
    if (!side.size && rnd.chance(0.006) && (o.mode === "wild" || isHealthy())) {
      const members = live().map((n) => n.id);
      const k =
        o.mode === "wild" ? 1 + rnd.int(members.length - 1) : 1 + rnd.int(Math.floor((o.nodes - 1) / 2));
      side = new Map();
      for (let i = 0; i < k && members.length; i++)
        side.set(members.splice(rnd.int(members.length), 1)[0]!, 1);
      healAt = t + 100 + rnd.int(1200);
      res.partitions++;
    }
    if (rnd.chance(0.01))
      net = { drop: rnd.next() * (o.mode === "wild" ? 0.3 : 0.1), dup: 0.03, delay: 5 + rnd.int(30) };
  }

  /** The repaired state: a leader whose committed configuration is N live members that applied all it committed. */
  function isHealthy(): boolean {
    const l = believedLeader();
    if (!l || pendingJoin.length) return false;
    const s = stat(l);
    return (
      s.members.length === o.nodes &&
      s.committedMembers.join() === s.members.join() &&
      l.node.appliedByAll(s.commitIndex) &&
      s.members.every((m) => nodes.get(m)?.alive && stat(nodes.get(m)!).role !== "wiped")
    );
  }

  /** The operator: replaces dead nodes with fresh empty ones and asks the leader to add them. */
  function operate(): void {
    for (const n of nodes.values()) {
      const dead = !n.alive || stat(n).role === "wiped";
      if (dead && !deadSince.has(n.id)) deadSince.set(n.id, t);
    }
    for (const [id, since] of deadSince)
      if (since >= 0 && t - since > 150) {
        deadSince.set(id, -1);
        pendingJoin.push(spawn(undefined).id);
      }
    const l = believedLeader();
    if (!l || !pendingJoin.length) return;
    const joiner = pendingJoin[0]!;
    if (!nodes.get(joiner)?.alive || stat(nodes.get(joiner)!).role === "wiped") {
      pendingJoin.shift();
      return;
    }
    const s = stat(l);
    if (s.members.includes(joiner)) {
      if (s.committedMembers.includes(joiner)) pendingJoin.shift();
      return;
    }
    if (s.members.length >= o.nodes + 1) return; // let the leader remove a dead one first
    const r = l.node.addMember(joiner, local(l, t));
    if ("messages" in r) send(l.id, { messages: r.messages });
  }

  function clientsAct(): void {
    for (const c of clients) {
      const l = believedLeader() ?? live()[rnd.int(live().length)];
      if (!l) return;
      const p = c.pending;
      if (!p) {
        if (!rnd.chance(0.05)) continue;
        const secret = new Uint8Array(32).map(() => rnd.int(256));
        const data = keyUpdate(c.coin, c.epoch, secret);
        c.pending = { data, hex: hex(data), secret, at: -Infinity, term: 0, index: 0 };
        continue;
      }
      const proposer = p.leader ? nodes.get(p.leader) : undefined;
      const ps = proposer?.alive ? stat(proposer) : undefined;
      if (
        ps?.role === "leader" &&
        ps.term === p.term &&
        proposer!.node.appliedByAll(p.index) &&
        appliedData.get(p.index) === p.hex
      ) {
        const coin = proposer!.sm.coins.get(c.coin);
        if (coin?.epoch === c.epoch + 1 && hex(coin.secret) === hex(p.secret)) {
          answered.push({
            coin: c.coin,
            epoch: c.epoch + 1,
            index: p.index,
            term: p.term,
            oldSecret: c.secret && hex(c.secret),
            at: t,
            config: new Set([...ps.members, ...ps.committedMembers]),
          });
          res.answered++;
          c.epoch++;
          c.secret = p.secret;
          c.pending = undefined;
          continue;
        }
      }
      const stale =
        ps?.role !== "leader" ||
        ps.term !== p.term ||
        (appliedData.has(p.index) && appliedData.get(p.index) !== p.hex);
      if (t - p.at > 400 || (stale && t - p.at > 60)) {
        const r = l.node.propose(p.data.slice(), local(l, t));
        res.proposals++;
        if ("index" in r) {
          Object.assign(p, { at: t, leader: l.id, term: r.term, index: r.index });
          send(l.id, { messages: r.messages });
        } else p.at = t;
      }
    }
  }

  /** Every secret a node holds: its state machine's and those in its log entries' data. */
  function held(n: SimNode): Set<string> {
    const out = new Set<string>();
    for (const c of n.sm.coins.values()) out.add(hex(c.secret));
    for (const e of n.node.entries()) if (e.data) out.add(hex(e.data.subarray(5, 37)));
    return out;
  }

  function check(): void {
    const all = [...nodes.values()].filter((n) => n.alive);
    const up = all.filter((n) => stat(n).role !== "wiped");
    for (const a of up) for (const b of up) if (reachable(a.id, b.id)) lastReach.set(`${a.id}|${b.id}`, t);
    // The latest time each node could possibly know that a majority of a configuration heard it: directly (each
    // member of a majority reachable since then), or from any node it can reach (a leader passes its quorum on).
    // The product's quorumAt is never later than this; it must wipe within the lease after it.
    const direct = new Map<NodeId, number>();
    for (const n of up) {
      const members = stat(n).members;
      const times = members
        .map((m) => (m === n.id ? t : (lastReach.get(`${n.id}|${m}`) ?? -Infinity)))
        .sort((a, b) => b - a);
      const mine = times[Math.floor(members.length / 2)] ?? -Infinity;
      direct.set(n.id, Math.max(reachedMajority.get(n.id) ?? -Infinity, mine));
    }
    for (const n of up) {
      let best = direct.get(n.id)!;
      for (const m of up) if (reachable(n.id, m.id)) best = Math.max(best, direct.get(m.id)!);
      reachedMajority.set(n.id, best);
    }
    for (const n of all) {
      const s = stat(n);
      if (s.role === "wiped") {
        if (n.sm.coins.size || n.node.entries().length) fail(`${n.id} is wiped but holds state`);
        continue;
      }
      // (a) at most one leader per term
      if (s.role === "leader") {
        const other = leaderOfTerm.get(s.term);
        if (other && other !== n.id) fail(`(a) two leaders in term ${s.term}: ${other} and ${n.id}`);
        leaderOfTerm.set(s.term, n.id);
      }
      // (b) identical state at each applied index
      const d = n.sm.digest();
      const seen = digestAt.get(s.appliedIndex);
      if (seen === undefined) digestAt.set(s.appliedIndex, d);
      else if (seen !== d) fail(`(b) ${n.id} state at index ${s.appliedIndex} differs`);
      for (const e of n.node.entries())
        if (e.index <= s.appliedIndex && e.data !== null)
          fail(`${n.id} keeps data of applied entry ${e.index}`);
      const secrets = held(n);
      for (const a of answered) {
        // (c) an answered key update is in every later leader's log and in every state past its index
        if (s.role === "leader" && s.term > a.term && s.lastIndex < a.index)
          fail(`(c) leader ${n.id} lacks answered ${a.index}`);
        if (s.appliedIndex >= a.index && (n.sm.coins.get(a.coin)?.epoch ?? 0) < a.epoch)
          fail(`(c) ${n.id} lost answered epoch ${a.epoch} of coin ${a.coin}`);
        // (d) the previous epoch's secret is gone from members at once, from everyone else within the lease
        if (a.oldSecret && (a.config.has(n.id) || t - a.at > LEASE_BOUND) && secrets.has(a.oldSecret))
          fail(
            `(d) ${n.id} still holds coin ${a.coin}'s epoch-${a.epoch - 1} secret after its update was answered at ${a.at}`,
          );
      }
      // (e) a node cut off from every majority wipes within the lease of the last time it could know of one
      if (s.quorumAt === -Infinity || !s.members.length) continue; // a joiner holding nothing
      const since = reachedMajority.get(n.id) ?? -Infinity;
      if (t - since > LEASE_BOUND)
        fail(`(e) ${n.id} could know of no majority since ${since} and is not wiped`);
    }
  }

  function runStep(): void {
    step++;
    const end = t + TICK;
    for (;;) {
      const due = queue.filter((m) => m.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq);
      if (!due.length) break;
      queue = queue.filter((m) => m.at > end);
      for (const m of due) {
        t = Math.max(t, m.at);
        deliver(m);
      }
    }
    t = end;
    for (const n of [...nodes.values()]) if (n.alive) send(n.id, n.node.tick(local(n, t)));
    if (o.trace)
      for (const n of nodes.values()) {
        const s = stat(n);
        o.trace(
          `${t} step ${step} ${n.id} alive=${n.alive} side=${side.get(n.id) ?? 0} ${s.role} term=${s.term} commit=${s.commitIndex} applied=${s.appliedIndex} last=${s.lastIndex} members=${s.members} q=${s.quorumAt} local=${local(n, t)}`,
        );
      }
    check();
  }

  try {
    return schedule();
  } catch (e) {
    // Anything the product throws (e.g. a committed entry in conflict) is reported with the seed and step too.
    if (e instanceof Error && !e.message.startsWith("raft sim:")) fail(`threw: ${e.stack ?? e.message}`);
    throw e;
  }

  function schedule(): SimResult {
    for (let i = 0; i < o.steps; i++) {
      faults();
      operate();
      clientsAct();
      runStep();
    }
    // (f) liveness: the faults stop; a leader appears, the set is repaired and a proposal commits everywhere.
    side = new Map();
    net = { drop: 0, dup: 0, delay: 5 };
    const holders = live().filter((n) => stat(n).quorumAt !== -Infinity);
    if (!holders.length) res.lost = true;
    if (o.mode === "wild" || res.lost) {
      for (let i = 0; i < 100; i++) runStep();
      return res;
    }
    for (let i = 0; i < 300; i++) {
      operate();
      clientsAct();
      runStep();
    }
    const l = believedLeader() ?? fail("(f) no leader after 3 s without faults");
    const r = l.node.propose(keyUpdate(200, 0, new Uint8Array(32).fill(7)), local(l, t));
    if (!("index" in r)) return fail("(f) the leader refused a proposal");
    send(l.id, { messages: r.messages });
    for (let i = 0; i < 50 && !l.node.appliedByAll(r.index); i++) runStep();
    if (!l.node.appliedByAll(r.index))
      fail(`(f) a proposal at ${r.index} was not applied by all within 0.5 s`);
    if (stat(l).members.length !== o.nodes) fail(`(f) the set was not repaired: ${stat(l).members}`);
    return res;
  }
}
