// `npm run bench [-- <area> ...]`: runs bench/<area>.bench.ts files (all of them without arguments).
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
// @ts-expect-error plain JavaScript without declarations
import { compiledIsFresh } from "../bin/launch.js";
import { printTable } from "./harness.ts";

const dir = import.meta.dirname;
const areas = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts"))
  .map((f) => f.replace(/\.bench\.ts$/, ""))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((a) => !areas.includes(a));
if (unknown.length > 0) {
  process.stderr.write(`unknown bench area(s): ${unknown.join(", ")}; available: ${areas.join(", ")}\n`);
  process.exit(2);
}
// The SE processes a bench starts run the compiled code when dist/ is fresh (bin/launch.js), as a fresh `npm ci`
// gives; measuring an edited tree through tsx would count the transpiler too (a bigger enclave heap for every
// collection). So: build first when the sources are newer.
if (!compiledIsFresh()) {
  process.stderr.write("# dist/ is older than the sources: building it first (npm run build)\n");
  execFileSync(process.execPath, [path.join(dir, "../scripts/build.mjs")], { stdio: "inherit" });
}
for (const area of wanted.length > 0 ? wanted : areas) {
  process.stderr.write(`# ${area}\n`);
  const mod = (await import(path.join(dir, `${area}.bench.ts`))) as { run: () => Promise<void> };
  await mod.run();
}
printTable();
