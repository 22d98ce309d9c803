// The enclave's closed-coin answers are bounded in time and count (audit #19.13), and a dropped one never
// brings its coin back.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ClosedCoins, CoinRegistry } from "../../enclave/coins.ts";

test("closed-coin answers are kept for their retention, at most max of them, oldest dropped first", () => {
  let now = 1_000_000;
  const closed = new ClosedCoins(() => now, 3, 10_000);
  for (const id of ["a", "b", "c"]) {
    closed.set(id, { id });
    now += 1000;
  }
  assert.deepEqual(closed.get("a"), { id: "a" }, "a retry inside the retention gets the stored answer");
  closed.set("d", { id: "d" });
  assert.equal(closed.size, 3);
  assert.equal(closed.get("a"), undefined, "the oldest went first");
  assert.deepEqual(closed.get("b"), { id: "b" });
  now += 20_000;
  assert.equal(closed.get("b"), undefined, "past the retention");
  closed.set("e", { id: "e" });
  assert.deepEqual(closed.get("e"), { id: "e" });
  assert.equal(closed.size, 1, "expired ones are dropped when a new one comes");
});

test("a coin whose answer was dropped stays out of the registry", () => {
  let now = 0;
  const reg = new CoinRegistry(() => now);
  const coin = { depositId: Buffer.alloc(16, 1) } as Parameters<CoinRegistry["add"]>[0];
  reg.add(coin);
  reg.bind(coin, "ab".repeat(18));
  reg.remove(coin); // what CloseStatechain does
  reg.closed.set("ab".repeat(18), { erasure: 1 });
  now += 8 * 24 * 3600_000;
  assert.equal(reg.closed.get("ab".repeat(18)), undefined);
  assert.equal(reg.statechain("ab".repeat(18)), undefined);
  assert.equal(reg.deposit(Buffer.alloc(16, 1).toString("hex")), undefined);
});
