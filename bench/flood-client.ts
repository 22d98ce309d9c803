// One flooding client for bench/flood.bench.ts: DepositInit with fresh keys and the proof of work the SE asks,
// nothing after, for `seconds`; prints {accepted, exhausted, other, maxBits} as one JSON line.
import { status } from "@grpc/grpc-js";
import { pub, randomSecret } from "../client/owner.ts";
import { SeClient, SeError } from "../client/se-client.ts";
import { solvePow } from "../protocol/pow.ts";
import { systemRng } from "../protocol/rng.ts";

const [port, seconds] = process.argv.slice(2).map(Number) as [number, number];
const counts = { accepted: 0, exhausted: 0, other: 0, maxBits: 0 };
const client = new SeClient(`127.0.0.1:${port}`, { rng: systemRng });
const until = Date.now() + seconds * 1000;
while (Date.now() < until) {
  const secret = randomSecret(systemRng);
  const proofKey = pub(secret);
  try {
    const ch = await client.call("getDepositChallenge", {});
    counts.maxBits = Math.max(counts.maxBits, ch.difficultyBits);
    const solution = Buffer.from(solvePow(ch.challenge, proofKey, ch.difficultyBits));
    await client.call(
      "depositInit",
      {
        proofKey,
        guard: { $case: "pow", value: { challenge: ch.challenge, solution } },
        auth: undefined,
        holderCommit: { commitment: Buffer.from(systemRng(32)) },
        keygenSessionId: Buffer.from(systemRng(16)),
      },
      secret,
    );
    counts.accepted++;
  } catch (e) {
    if (e instanceof SeError && e.code === status.RESOURCE_EXHAUSTED) counts.exhausted++;
    else counts.other++;
    await new Promise((r) => setTimeout(r, 5));
  }
}
client.close();
process.stdout.write(`${JSON.stringify(counts)}\n`);
