// Thousands of seeded schedules of the replica set under a hostile host (test/enclave/replica/sim.ts), each
// checked after every step: one leader per term, identical applied state, no answered key update lost, no old
// secret left after an answer, a wipe within the lease of losing every majority, and (in "safe" schedules, whose
// faults always leave a majority) a leader and a committed proposal once the faults stop.
// SEED=<n> runs one schedule (the one a failure names); TEST_LONG=1 runs 20 times as many.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type SimOptions, type SimResult, simulate } from "./sim.ts";

/** The schedule a seed stands for: a quarter on 5 nodes, a quarter "wild" (any fault at any time). */
export function scheduleFor(seed: number): SimOptions {
  return { seed, nodes: seed % 4 === 0 ? 5 : 3, mode: seed % 4 === 3 ? "wild" : "safe", steps: 300 };
}

const SEED = process.env.SEED;
const COUNT = 2000 * (process.env.TEST_LONG === "1" ? 20 : 1);

if (SEED !== undefined) {
  test(`raft sim: the schedule of SEED=${SEED}`, () => {
    const r = simulate(scheduleFor(Number(SEED)));
    console.log(`raft sim: SEED=${SEED}`, r);
  });
} else {
  test(`raft sim: ${COUNT} seeded schedules (3 and 5 nodes; drops, delays, duplicates, crashes, partitions, drift)`, (t) => {
    const started = Date.now();
    const total: Record<keyof SimResult, number> = {
      answered: 0,
      proposals: 0,
      wipes: 0,
      crashes: 0,
      partitions: 0,
      lost: 0,
    };
    let safeLost = 0;
    for (let seed = 1; seed <= COUNT; seed++) {
      const o = scheduleFor(seed);
      const r = simulate(o); // throws, naming the seed and step, on any broken invariant
      for (const k of Object.keys(total) as (keyof SimResult)[]) total[k] += Number(r[k]);
      if (r.lost && o.mode === "safe") safeLost++;
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const line = `raft sim: ${COUNT} schedules in ${seconds} s: ${JSON.stringify(total)}`;
    console.log(line);
    t.diagnostic(line);
    assert.equal(safeLost, 0, "no safe schedule (faults always leaving a majority) lost the whole set");
    assert.ok(total.answered > COUNT * 10, `key updates were answered (${total.answered})`);
    assert.ok(total.wipes > 0 && total.crashes > 0 && total.partitions > 0, "the faults happened");
  });
}
