// One operation at a time per key (a coin): a later request on the same coin waits for the earlier one, so
// two requests never interleave on one coin's state, while different coins proceed independently.
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const tail = new Promise<void>((r) => {
      release = r;
    });
    const chained = prev.then(() => tail);
    this.tails.set(key, chained);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === chained) this.tails.delete(key);
    }
  }
}
