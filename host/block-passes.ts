// A pass over some state at start and at every new block, one at a time: a block that arrives while a pass runs
// makes exactly one more pass after it (never two at once, never a backlog of blocks). The watchtower and the
// funding watch run on it; tests and start-up wait for the pass that saw a height.
export class BlockPasses {
  private unsubscribe: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private processed = -1;
  private waiters: { height: number; resolve: () => void }[] = [];

  /** `pass` handles its own errors (a rejected pass would be an unhandled rejection). */
  constructor(
    private readonly chain: { onBlock(listener: (height: number) => void): () => void },
    private readonly pass: () => Promise<void>,
  ) {}

  /** Subscribes to new blocks and runs a pass at once; resolves when the passes under way are done. */
  async start(): Promise<void> {
    if (this.unsubscribe) return;
    this.unsubscribe = this.chain.onBlock(() => this.schedule());
    this.schedule();
    await this.running;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.running;
  }

  /** Resolves once a pass has run with the tip at `height` or above. */
  processedHeight(height: number): Promise<void> {
    if (this.processed >= height) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ height, resolve }));
  }

  /** Records that a pass covered the chain up to `tip` (the pass calls it when it completes). */
  passed(tip: number): void {
    this.processed = Math.max(this.processed, tip);
    const ready = this.waiters.filter((w) => w.height <= this.processed);
    this.waiters = this.waiters.filter((w) => w.height > this.processed);
    for (const w of ready) w.resolve();
  }

  private schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again);
      this.running = undefined;
    })();
  }
}
