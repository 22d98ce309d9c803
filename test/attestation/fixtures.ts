// Shared test data: the real Nitro documents from ../shared/fixtures/nitro and the times they are valid at.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const nitroDir = path.resolve(projectRoot, "../shared/fixtures/nitro");

export function readB64(name: string): Uint8Array {
  return new Uint8Array(Buffer.from(readFileSync(path.join(nitroDir, name), "utf8").trim(), "base64"));
}

/** Each fixture with its validity window in Unix seconds (fixtures README). */
export const NITRO = {
  nondebug: { file: "nitrite_nondebug.b64", from: 1725719856, to: 1725730659, debug: false },
  debug: { file: "nitrite_debug.b64", from: 1725719883, to: 1725730686, debug: true },
  evervault: { file: "evervault_debug_spki.b64", from: 1695047829, to: 1695058632, debug: true },
} as const;

export type NitroName = keyof typeof NITRO;

export const doc = (name: NitroName) => readB64(NITRO[name].file);
/** A time inside the window, a minute after the leaf was issued (ms). */
export const insideMs = (name: NitroName) => (NITRO[name].from + 60) * 1000;
