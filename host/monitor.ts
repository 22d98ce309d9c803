// Keeps an up-to-date view of the enclave's and the chain's liveness for health checks and the banner.
import { EventEmitter } from "node:events";
import { status } from "@grpc/grpc-js";
import type { GetStatusResponse } from "../proto/gen/enclave.ts";
import type { EnclaveHandle } from "./enclave-process.ts";
import type { HealthSnapshot, HealthSource } from "./health.ts";

const STATUS_DEADLINE_MS = 5000;

export class Monitor implements HealthSource {
  private snap: HealthSnapshot = {
    enclave: { reachable: false, instanceId: "", error: "not checked yet" },
    chain: { reachable: false, height: 0, error: "not checked yet" },
  };
  private readonly events = new EventEmitter();
  private lastStatus: GetStatusResponse | undefined;
  private inFlight: Promise<HealthSnapshot> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly enclave: EnclaveHandle,
    private readonly chainHeight: () => Promise<number>,
    private readonly intervalMs = 2000,
  ) {}

  snapshot(): HealthSnapshot {
    return this.snap;
  }

  /** The funding watch's count of coins whose funding is lost (host/funding-watch.ts), for health checks. */
  setFundingLost(n: number): void {
    if (this.snap.fundingLost === n) return;
    this.snap = { ...this.snap, fundingLost: n };
    this.events.emit("change");
  }

  onChange(listener: () => void): () => void {
    this.events.on("change", listener);
    return () => this.events.off("change", listener);
  }

  /**
   * The enclave's last answer to GetStatus (identity, mode, measurements: fixed for an instance), while it is
   * believed alive: it answered the last poll, or that poll only ran out of time.
   */
  enclaveStatus(): GetStatusResponse | undefined {
    return this.lastStatus;
  }

  /** Emitted with the new instance id when the enclave answers with a different one (it lost its state). */
  onEnclaveRestart(listener: (previous: string, current: string) => void): void {
    this.events.on("enclave-restart", listener);
  }

  /**
   * Polls the enclave and the chain. Calls made while a poll is under way share it: polls finishing out of order
   * could put an older instance id back and look like an enclave restart.
   */
  refresh(): Promise<HealthSnapshot> {
    this.inFlight ??= this.poll().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async poll(): Promise<HealthSnapshot> {
    const [enclave, chain] = await Promise.all([
      // Generous: under load the enclave's calls queue behind key updates for seconds; busy is not down.
      this.enclave.status(STATUS_DEADLINE_MS).then(
        (s) => {
          this.lastStatus = s;
          return { reachable: true, instanceId: s.instanceId.toString("hex"), error: "" };
        },
        (err: Error & { code?: number }) => {
          // Out of time means busy (its calls queue behind key updates), not gone: its last answer still holds.
          if (err.code !== status.DEADLINE_EXCEEDED) this.lastStatus = undefined;
          return { reachable: false, instanceId: this.snap.enclave.instanceId, error: err.message };
        },
      ),
      this.chainHeight().then(
        (height) => ({ reachable: true, height, error: "" }),
        (err: Error) => ({ reachable: false, height: this.snap.chain.height, error: err.message }),
      ),
    ]);
    const previous = this.snap;
    this.snap = { enclave, chain, fundingLost: previous.fundingLost };
    if (previous.enclave.instanceId && enclave.instanceId !== previous.enclave.instanceId) {
      this.events.emit("enclave-restart", previous.enclave.instanceId, enclave.instanceId);
    }
    if (JSON.stringify(previous) !== JSON.stringify(this.snap)) this.events.emit("change");
    return this.snap;
  }

  start(): void {
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
