// The host's small guards, without processes: per-coin serialization, the coin a request is about, rate buckets,
// proof-of-work challenges, the enclave policy comparison, the fault hook's off switch, the metrics text.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { coinKey } from "../../host/api/index.ts";
import { loadConfig } from "../../host/config.ts";
import { crashHook } from "../../host/crash-hook.ts";
import { KeyedMutex } from "../../host/keyed-mutex.ts";
import { checkEnclavePolicy, enclavePolicy } from "../../host/main.ts";
import { Metrics } from "../../host/metrics.ts";
import { PowGuard } from "../../host/pow.ts";
import { RateLimiter } from "../../host/ratelimit.ts";
import type { ProtocolError } from "../../protocol/errors.ts";
import { solvePow } from "../../protocol/pow.ts";

const tick = () => new Promise((r) => setImmediate(r));

test("keyed mutex: one step at a time per key, other keys in parallel, released on failure", async () => {
  const m = new KeyedMutex();
  const log: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const a1 = m.run("a", async () => {
    log.push("a1 start");
    await gate;
    log.push("a1 end");
    throw new Error("a1 failed");
  });
  const a2 = m.run("a", async () => {
    log.push("a2");
    return 2;
  });
  const b = m.run("b", async () => {
    log.push("b");
    return 3;
  });
  assert.equal(await b, 3);
  await tick();
  assert.deepEqual(log, ["a1 start", "b"], "a2 waits for a1; b does not");
  release();
  await assert.rejects(a1, /a1 failed/);
  assert.equal(await a2, 2);
  assert.deepEqual(log, ["a1 start", "b", "a1 end", "a2"]);
  assert.equal(m.size, 0, "no key is kept once idle");
});

test("coin key: statechain id, else deposit id; none for malformed ids", () => {
  const txid = Buffer.alloc(32, 1);
  assert.equal(coinKey({ statechainId: { txid, vout: 2 } }), `statechain:${txid.toString("hex")}:2`);
  assert.equal(coinKey({ depositId: Buffer.alloc(16, 3) }), `deposit:${"03".repeat(16)}`);
  assert.equal(coinKey({ statechainId: { txid: Buffer.alloc(31), vout: 0 } }), undefined);
  assert.equal(coinKey({ depositId: Buffer.alloc(15) }), undefined);
  assert.equal(coinKey({}), undefined);
});

test("rate limiter: bursts, refills at the rate, keys apart; rate 0 is unlimited", () => {
  let now = 0;
  const r = new RateLimiter(2, 3, () => now);
  assert.deepEqual([r.take("k"), r.take("k"), r.take("k"), r.take("k")], [true, true, true, false]);
  assert.equal(r.take("other"), true);
  now = 499;
  assert.equal(r.take("k"), false);
  now = 500;
  assert.equal(r.take("k"), true, "one token back after 0.5 s at 2/s");
  now = 100_000;
  assert.deepEqual(
    [r.take("k"), r.take("k"), r.take("k"), r.take("k")],
    [true, true, true, false],
    "no more than the burst",
  );
  const unlimited = new RateLimiter(0, 1, () => 0);
  assert.ok(
    Array.from({ length: 100 }, () => unlimited.take("x")).every(Boolean),
    "a rate limiter with rate 0 is unlimited: 100 takes in a row pass",
  );
});

test("proof of work: issued challenges verify once solved; forged, expired and weak ones are refused", () => {
  const guard = new PowGuard(randomBytes(32), 8, 1000);
  const key = Buffer.alloc(33, 2);
  const { challenge, expiresAt } = guard.issue(10_000);
  const solution = solvePow(challenge, key, 8);
  assert.equal(guard.verify(challenge, key, solution, 10_500), expiresAt);
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return (err as ProtocolError).code;
    }
    return "accepted";
  };
  const forged = Buffer.from(challenge);
  forged[30]! ^= 1;
  assert.equal(
    code(() => guard.verify(forged, key, solution, 10_500)),
    "POW_CHALLENGE",
  );
  assert.equal(
    code(() => guard.verify(challenge, key, solution, 11_001)),
    "POW_EXPIRED",
  );
  assert.equal(
    code(() => guard.verify(challenge, Buffer.alloc(33, 3), solution, 10_500)),
    "POW_INSUFFICIENT",
  );
  assert.equal(
    code(() => guard.verify(challenge, key, Buffer.alloc(0), 10_500)),
    "POW_SOLUTION",
  );
  assert.equal(
    code(() => new PowGuard(randomBytes(32), 8).verify(challenge, key, solution, 10_500)),
    "POW_CHALLENGE",
  );
});

test("enclave policy: the host refuses an enclave that enforces anything else than its configuration", () => {
  const cfg = loadConfig({ env: { SE_INIT_LOCK: "200" } });
  const expected = enclavePolicy(cfg);
  const enclaveSide = { ...expected, tipSlackBlocks: 12 }; // a setting only the enclave has
  checkEnclavePolicy(expected, JSON.stringify(enclaveSide));
  assert.throws(
    () =>
      checkEnclavePolicy(expected, JSON.stringify({ ...enclaveSide, initLock: 100, backupMode: "kickoff" })),
    /backupMode \(the enclave enforces "kickoff", the configuration says "absolute"\); initLock \(the enclave enforces 100, the configuration says 200\)/,
  );
  assert.throws(() => checkEnclavePolicy(expected, ""), /no readable policy/);
});

test("fault hook: off without SE_TEST_CRASH_FILE and outside simulator mode; ignores other steps", async () => {
  const cfg = loadConfig({ env: {} });
  const file = path.join(mkdtempSync(path.join(tmpdir(), "hook-")), "crash-at");
  assert.equal(crashHook(cfg, {}), undefined);
  assert.equal(crashHook({ ...cfg, mode: "nitro" }, { SE_TEST_CRASH_FILE: file }), undefined);
  const hook = crashHook(cfg, { SE_TEST_CRASH_FILE: file })!;
  await hook("SignFirst", "before-commit");
  writeFileSync(file, "SignFirst:after-commit");
  await hook("SignFirst", "before-commit");
  await hook("SignSecond", "after-commit");
  assert.ok(existsSync(file), "a plan for another step stays armed");
  writeFileSync(file, "SignFirst:after-commit:pause=1");
  await hook("SignFirst", "after-commit");
  assert.ok(!existsSync(file), "a pause is spent once");
  assert.ok(!existsSync(`${file}.paused`), "the pause marker is gone once the pause is over");

  // A long pause: the marker shows the step is held there, and deleting it lets the step go on at once.
  writeFileSync(file, "SignFirst:before-commit:pause=600000");
  let done = false;
  const held = hook("SignFirst", "before-commit").then(() => {
    done = true;
  });
  while (!existsSync(`${file}.paused`)) await new Promise((r) => setTimeout(r, 5));
  assert.equal(
    readFileSync(`${file}.paused`, "utf8"),
    "SignFirst:before-commit",
    "the marker names the step",
  );
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(!done, "the step is held while the marker exists");
  rmSync(`${file}.paused`);
  await held;
});

test("metrics: Prometheus text with escaped labels, histograms and gauges", async () => {
  const m = new Metrics();
  m.inc("se_requests_total", { method: "GetInfo", code: "OK" }, "requests");
  m.inc("se_requests_total", { method: "GetInfo", code: "OK" }, "requests");
  m.inc("se_requests_total", { method: 'a"b\\c', code: "X" }, "requests");
  m.observe("se_request_seconds", { method: "GetInfo" }, 0.02, "latency");
  m.gauge("se_statechains", "by state", async () => [[{ state: "ACTIVE" }, 3]]);
  const text = await m.render();
  assert.match(text, /^# HELP se_requests_total requests\n# TYPE se_requests_total counter$/m);
  assert.match(text, /^se_requests_total\{code="OK",method="GetInfo"\} 2$/m);
  assert.match(text, /^se_requests_total\{code="X",method="a\\"b\\\\c"\} 1$/m);
  assert.match(text, /^se_request_seconds_bucket\{method="GetInfo",le="0.01"\} 0$/m);
  assert.match(text, /^se_request_seconds_bucket\{method="GetInfo",le="0.025"\} 1$/m);
  assert.match(text, /^se_request_seconds_count\{method="GetInfo"\} 1$/m);
  assert.match(text, /^# TYPE se_statechains gauge\nse_statechains\{state="ACTIVE"\} 3$/m);
});

test("proof of work: the difficulty is chosen at issue and carried by the challenge, never below the base (audit #19.2)", () => {
  const guard = new PowGuard(randomBytes(32), 4, 1000);
  const key = Buffer.alloc(33, 2);
  const hard = guard.issue(10_000, 10);
  assert.equal(hard.bits, 10);
  // A solution good for the base difficulty only is refused for the harder challenge.
  let weak: Uint8Array | undefined;
  for (let i = 0; !weak; i++) {
    const s = Buffer.alloc(4);
    s.writeUInt32BE(i);
    try {
      guard.verify(hard.challenge, key, s, 10_500);
    } catch (err) {
      if ((err as ProtocolError).code !== "POW_INSUFFICIENT") throw err;
      if (/has ([4-9]) leading/.test((err as Error).message)) weak = s;
    }
  }
  assert.throws(() => guard.verify(hard.challenge, key, weak!, 10_500), /10 required/);
  assert.ok(guard.verify(hard.challenge, key, solvePow(hard.challenge, key, 10), 10_500) > 0, "solved");
  // Its difficulty cannot be lowered: it is under the MAC; nor issued below the base.
  const lowered = Buffer.from(hard.challenge);
  lowered[8] = 4;
  assert.throws(() => guard.verify(lowered, key, weak!, 10_500), /not issued by this SE/);
  assert.equal(guard.issue(10_000, 1).bits, 4);
});
