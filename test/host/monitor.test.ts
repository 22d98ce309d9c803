// The host's monitor: polls do not overlap (one finishing late could put an old enclave instance id back and look
// like a restart), and a changed instance id is reported once as a restart.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { EnclaveHandle } from "../../host/enclave-process.ts";
import { Monitor } from "../../host/monitor.ts";
import type { GetStatusResponse } from "../../proto/gen/enclave.ts";

const statusOf = (id: number) => ({ instanceId: Buffer.alloc(16, id) }) as GetStatusResponse;

test("refreshes called while a poll is under way share it; a new instance id is one restart", async () => {
  let polls = 0;
  let instance = 1;
  const answers: Array<() => void> = [];
  const handle = {
    status: () =>
      new Promise<GetStatusResponse>((resolve) => {
        polls++;
        const id = instance;
        answers.push(() => resolve(statusOf(id)));
      }),
  } as unknown as EnclaveHandle;
  const monitor = new Monitor(handle, async () => 7);
  const restarts: string[][] = [];
  monitor.onEnclaveRestart((prev, cur) => restarts.push([prev, cur]));

  const first = monitor.refresh();
  const second = monitor.refresh();
  assert.equal(polls, 1, "one poll for both callers");
  answers.shift()!();
  assert.deepEqual(await first, await second);
  assert.equal((await first).enclave.instanceId, "01".repeat(16));

  // The enclave restarts: a poll started before and one started after cannot both be in flight.
  const before = monitor.refresh();
  instance = 2;
  const after = monitor.refresh();
  answers.shift()!();
  await Promise.all([before, after]);
  assert.equal(polls, 2);
  const next = monitor.refresh();
  answers.shift()!();
  assert.equal((await next).enclave.instanceId, "02".repeat(16));
  assert.deepEqual(restarts, [["01".repeat(16), "02".repeat(16)]], "exactly one restart, old to new");
});
