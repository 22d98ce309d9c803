// Paillier keys generated ahead of need (primes, Π^mod and encryption nonces), so a deposit or key update
// does not wait for prime generation. Generation runs on libuv's thread pool; the pool refills itself after
// every take. Keys never leave the enclave and each is used for exactly one share.
import { generatePaillierKey, type PaillierKey } from "../protocol/ecdsa2p/index.ts";

export class PaillierPool {
  private readonly ready: PaillierKey[] = [];
  private filling = 0;
  private stopped = false;

  constructor(
    private readonly target: number,
    private readonly onError: (err: Error) => void,
    private readonly concurrency = 2,
  ) {}

  get size(): number {
    return this.ready.length;
  }

  start(): void {
    this.refill();
  }

  /** A ready key, or undefined when the pool is empty (the caller then generates one inline). */
  take(): PaillierKey | undefined {
    const key = this.ready.shift();
    this.refill();
    return key;
  }

  private refill(): void {
    while (
      !this.stopped &&
      this.ready.length + this.filling < this.target &&
      this.filling < this.concurrency
    ) {
      this.filling++;
      generatePaillierKey().then(
        (key) => {
          this.filling--;
          if (this.stopped) return;
          this.ready.push(key);
          this.refill();
        },
        (err: Error) => {
          this.filling--;
          this.onError(err);
        },
      );
    }
  }

  stop(): void {
    this.stopped = true;
  }
}
