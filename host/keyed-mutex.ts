// One protocol step at a time per coin: a later request on the same coin waits for the earlier one to commit, so
// the order in which steps reach the enclave is the order in which they are written, and a slow step can never
// overwrite the result of a faster one that followed it. Different coins proceed independently.
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((r) => {
      release = r;
    });
    const tail = prev.then(() => done);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys with a step running or waiting (for tests and metrics). */
  get size(): number {
    return this.tails.size;
  }
}
