// `npm run bench [-- <area> ...]`: runs bench/<area>.bench.ts files (all of them without arguments).
import { readdirSync } from "node:fs";
import path from "node:path";
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
for (const area of wanted.length > 0 ? wanted : areas) {
  process.stderr.write(`# ${area}\n`);
  const mod = (await import(path.join(dir, `${area}.bench.ts`))) as { run: () => Promise<void> };
  await mod.run();
}
printTable();
