// The public StatechainService. Each handler validates its input, drives the enclave and the store, and
// answers with a gRPC status code whose message names the failed check.
import type { ServerUnaryCall, sendUnaryData, UntypedServiceImplementation } from "@grpc/grpc-js";
import { BackupMode } from "../proto/gen/common.ts";
import type { GetInfoRequest, GetInfoResponse } from "../proto/gen/statechain.ts";
import type { HostConfig } from "./config.ts";
import type { EnclaveHandle } from "./enclave-process.ts";
import type { Monitor } from "./monitor.ts";

export const VERSION = "0.1.0";

export interface ServiceDeps {
  cfg: HostConfig;
  enclave: EnclaveHandle;
  monitor: Monitor;
}

export function statechainService(deps: ServiceDeps): UntypedServiceImplementation {
  const { cfg } = deps;
  return {
    async getInfo(
      _call: ServerUnaryCall<GetInfoRequest, GetInfoResponse>,
      cb: sendUnaryData<GetInfoResponse>,
    ) {
      try {
        const st = await deps.enclave.status();
        const p = cfg.protocol;
        cb(null, {
          network: cfg.network,
          version: VERSION,
          backupMode:
            p.backupMode === "kickoff" ? BackupMode.BACKUP_MODE_KICKOFF : BackupMode.BACKUP_MODE_ABSOLUTE,
          initLock: p.initLock,
          locktimeInterval: p.locktimeInterval,
          lockSafetyMargin: p.lockSafetyMargin,
          depositConfirmations: p.depositConfirmations,
          withdrawConfirmations: p.withdrawConfirmations,
          minDepositSat: BigInt(p.minDepositSat),
          maxDepositSat: BigInt(p.maxDepositSat),
          withdrawFeeBps: p.withdrawFeeBps,
          feeAddress: p.feeAddress,
          minFeeRateSatVb: p.minFeeRateSatVb,
          chainTip: deps.monitor.snapshot().chain.height,
          depositGuard: "pow",
          mainstay: {
            enabled: cfg.mainstay.enabled,
            url: cfg.mainstay.url,
            slot: cfg.mainstay.slot,
            commitIntervalS: cfg.mainstay.commitIntervalS,
          },
          enclave: {
            instanceId: st.instanceId,
            attestationMode: st.attestationMode,
            expectedPcrs: [
              {
                name: `${st.attestationMode}-${st.version}`,
                pcr0: st.pcr0,
                pcr1: st.pcr1,
                pcr2: st.pcr2,
                pcr8: "",
              },
            ],
            simulatorRootPem: "",
          },
        });
      } catch (err) {
        cb({ code: 14, details: `enclave unavailable: ${(err as Error).message}` });
      }
    },
  };
}
