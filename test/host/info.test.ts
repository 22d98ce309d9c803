// GetInfo's enclave section (identity, mode, measurements) comes from the monitor's last GetStatus answer, which
// is fixed for an enclave instance: GetInfo must not wait behind the enclave's work. Under load (32 wallets on
// two cores) a live call queued past its deadline and GetInfo failed with UNAVAILABLE.
import assert from "node:assert/strict";
import { test } from "node:test";
import { status } from "@grpc/grpc-js";
import type { ApiDeps } from "../../host/api/deps.ts";
import { infoHandlers } from "../../host/api/info.ts";
import { loadConfig } from "../../host/config.ts";
import type { EnclaveHandle } from "../../host/enclave-process.ts";
import { Monitor } from "../../host/monitor.ts";
import type { GetStatusResponse } from "../../proto/gen/enclave.ts";

const STATUS = {
  instanceId: Buffer.alloc(16, 7),
  attestationMode: "simulator",
  version: "0.1.0",
  pcr0: "aa".repeat(48),
  pcr1: "bb".repeat(48),
  pcr2: "cc".repeat(48),
} as GetStatusResponse;

/**
 * An enclave whose GetStatus answers `answers` times, then fails with `then` (DEADLINE_EXCEEDED: busy;
 * UNAVAILABLE: gone); counts the monitor's and the live calls.
 */
function enclaveAnswering(answers: number, then: status = status.DEADLINE_EXCEEDED) {
  const calls = { monitor: 0, live: 0 };
  const failure = Object.assign(new Error(`enclave: ${status[then]}`), { code: then, details: "" });
  const handle = {
    async status() {
      calls.monitor++;
      if (calls.monitor > answers) throw failure;
      return STATUS;
    },
    client: {
      getStatus(_req: unknown, _md: unknown, _opts: unknown, cb: (e: Error | null, r?: unknown) => void) {
        calls.live++;
        setImmediate(() => cb(failure));
      },
    },
  } as unknown as EnclaveHandle;
  return { handle, calls };
}

function deps(enclave: EnclaveHandle, monitor: Monitor): ApiDeps {
  return {
    cfg: loadConfig({ env: {} }),
    enclave: enclave.client,
    monitor,
    simulatorRootPem: "-----BEGIN CERTIFICATE-----\n…",
    mainstayUrl: "",
  } as unknown as ApiDeps;
}

test("GetInfo answers from the monitor's last GetStatus while the enclave is too busy to answer", async () => {
  const { handle, calls } = enclaveAnswering(1);
  const monitor = new Monitor(handle, async () => 432);
  await monitor.refresh();
  await monitor.refresh(); // the enclave is now busy: the monitor keeps the instance's last answer
  assert.equal(monitor.snapshot().enclave.reachable, false);
  const info = await infoHandlers(deps(handle, monitor)).getInfo();
  assert.equal(calls.live, 0, "no live call to the enclave");
  assert.deepEqual(Buffer.from(info.enclave!.instanceId), STATUS.instanceId);
  assert.deepEqual(
    info.enclave!.expectedPcrs.map((p) => [p.name, p.pcr0, p.pcr1, p.pcr2]),
    [["simulator-0.1.0", STATUS.pcr0, STATUS.pcr1, STATUS.pcr2]],
  );
  assert.match(info.enclave!.simulatorRootPem, /BEGIN CERTIFICATE/);
  assert.equal(info.chainTip, 432);
});

test("before the monitor has heard from the enclave, GetInfo asks it and reports it unavailable", async () => {
  const { handle, calls } = enclaveAnswering(0);
  const monitor = new Monitor(handle, async () => 432);
  await monitor.refresh();
  await assert.rejects(
    infoHandlers(deps(handle, monitor)).getInfo(),
    (e: { code?: number }) => e.code === status.DEADLINE_EXCEEDED,
  );
  assert.equal(calls.live, 1);
});

test("once the monitor finds the enclave gone (not just busy), GetInfo asks it again and reports it unavailable", async () => {
  const { handle, calls } = enclaveAnswering(1, status.UNAVAILABLE);
  const monitor = new Monitor(handle, async () => 432);
  await monitor.refresh();
  await infoHandlers(deps(handle, monitor)).getInfo();
  assert.equal(calls.live, 0, "while it answers, the monitor's answer serves");
  await monitor.refresh();
  await assert.rejects(
    infoHandlers(deps(handle, monitor)).getInfo(),
    (e: { code?: number }) => e.code === status.UNAVAILABLE,
  );
  assert.equal(calls.live, 1);
});
