// Secrets the enclave must be able to erase for real live in byte arrays it owns; wipe() overwrites them.
// BigInt copies made for arithmetic are transient (dropped at the end of the operation), never stored.
import { keep } from "./coins.ts";

export class Secret {
  private bytes: Uint8Array | undefined;

  constructor(bytes: Uint8Array) {
    this.bytes = keep(bytes);
  }

  get erased(): boolean {
    return this.bytes === undefined;
  }

  /** Gives `fn` the bytes; throws if the secret was erased. */
  use<T>(fn: (bytes: Uint8Array) => T): T {
    if (!this.bytes) throw new Error("secret was erased");
    return fn(this.bytes);
  }

  wipe(): void {
    if (this.bytes) this.bytes.fill(0);
    this.bytes = undefined;
  }
}

/** Zeroes every byte array it is given (for secrets held in library structures). */
export function wipeAll(...arrays: Array<Uint8Array | undefined>): void {
  for (const a of arrays) a?.fill(0);
}
