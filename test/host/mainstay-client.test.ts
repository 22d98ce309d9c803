// The Mainstay HTTP client against scripted servers: request shapes, retries with backoff, timeouts, and the
// three kinds of failure the publisher acts on.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { backoffDelay, MainstayClient, MainstayError } from "../../host/mainstay/client.ts";
import { fromDisplayHex, toDisplayHex, verifySlotProof } from "../../protocol/mainstay.ts";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function serve(handler: Handler): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      requests.push(`${req.method} ${req.url}`);
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests };
}

const json = (res: ServerResponse, status: number, payload: unknown) =>
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(payload));
const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));
const noSleep = { sleep: async () => undefined };
const code = (c: string, msg?: RegExp) => (e: unknown) =>
  e instanceof MainstayError && e.code === c && (!msg || msg.test(e.message));

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const REAL = JSON.parse(
  readFileSync(path.resolve(ROOT, "../shared/fixtures/mainstay/test_sequence_1.msp"), "utf8"),
)[0] as { commitment: string; merkle_root: string; ops: unknown[]; txid: string };

test("send posts {commitment, position, token} as JSON to /api/v1/commitment/send", async () => {
  let seen: { type?: string; body?: unknown } = {};
  const { url, server, requests } = await serve((req, body, res) => {
    seen = { type: req.headers["content-type"], body: JSON.parse(body) };
    json(res, 200, { response: "Commitment added", timestamp: 1, allowance: { cost: 1 } });
  });
  const root = new Uint8Array(32).map((_, i) => i);
  await new MainstayClient({ url: `${url}/api/v1/`, position: 3, token: "tok" }).send(root);
  assert.deepEqual(requests, ["POST /api/v1/commitment/send"]);
  assert.equal(seen.type, "application/json");
  assert.deepEqual(seen.body, { commitment: toDisplayHex(root), position: 3, token: "tok" });
  await close(server);
});

test("an unavailable service is retried with backoff, then succeeds", async () => {
  let n = 0;
  const { url, server, requests } = await serve((_req, _body, res) => {
    n += 1;
    if (n <= 2) json(res, 503, { error: "busy" });
    else json(res, 200, { response: "Commitment added" });
  });
  const delays: number[] = [];
  const c = new MainstayClient({
    url,
    position: 1,
    token: "t",
    retries: 3,
    backoffMs: 100,
    sleep: async (ms) => {
      delays.push(ms);
    },
  });
  await c.send(new Uint8Array(32));
  assert.equal(requests.length, 3);
  assert.equal(delays.length, 2);
  assert.ok(delays[0]! >= 50 && delays[0]! <= 100, `first delay ${delays[0]} within 50..100`);
  assert.ok(delays[1]! >= 100 && delays[1]! <= 200, `second delay ${delays[1]} within 100..200`);
  await close(server);
});

test("backoff doubles, is capped, and jitters", () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(5000, 100 * 2 ** attempt);
    for (let i = 0; i < 20; i++) {
      const d = backoffDelay(attempt, 100, 5000);
      assert.ok(d >= ceiling / 2 && d <= ceiling, `attempt ${attempt}: ${d}`);
    }
  }
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(5, 100, 60_000)));
  assert.ok(spread.size > 5, "delays are jittered");
});

test("a service that is down or silent ends in 'unavailable' after the retries", async () => {
  const { url, server } = await serve(() => undefined); // never answers
  await assert.rejects(
    new MainstayClient({ url, position: 1, token: "t", timeoutMs: 150, retries: 1, ...noSleep }).send(
      new Uint8Array(32),
    ),
    code("unavailable", /no answer within 150 ms/),
  );
  server.closeAllConnections();
  await close(server);
  // Nothing listens there any more.
  await assert.rejects(
    new MainstayClient({ url, position: 1, token: "t", retries: 2, ...noSleep }).send(new Uint8Array(32)),
    code("unavailable", /unreachable/),
  );
});

test("a refusal is not retried, and garbage is a bad response", async () => {
  const { url, server, requests } = await serve((req, _b, res) => {
    if (req.url?.startsWith("/api/v1/commitment/send")) json(res, 200, { error: "your token is wrong" });
    else if (req.url?.includes("latestproof")) res.writeHead(200).end("<html>proxy</html>");
    else json(res, 200, { response: { attestation: { txid: "zz" }, merkleproof: {} } });
  });
  const c = new MainstayClient({ url, position: 1, token: "t", retries: 3, ...noSleep });
  await assert.rejects(c.send(new Uint8Array(32)), code("rejected", /your token is wrong/));
  assert.equal(requests.length, 1, "not retried");
  await assert.rejects(c.latestProof(), code("bad-response", /not JSON/));
  await assert.rejects(c.commitmentProof(new Uint8Array(32)), code("bad-response"));
  await close(server);
});

test("proof endpoints: the real JSON shapes parse and verify; 'not attested yet' is undefined", async () => {
  const { url, server } = await serve((req, _b, res) => {
    const u = new URL(req.url!, "http://x");
    if (
      u.pathname === "/api/v1/commitment/commitment" &&
      u.searchParams.get("commitment") === REAL.commitment
    )
      json(res, 200, {
        response: {
          attestation: { merkle_root: REAL.merkle_root, txid: REAL.txid, confirmed: true, inserted_at: "x" },
          merkleproof: {
            position: 2,
            merkle_root: REAL.merkle_root,
            commitment: REAL.commitment,
            ops: REAL.ops,
          },
        },
      });
    else if (u.pathname === "/api/v1/commitment/commitment") json(res, 200, { error: "Not found" });
    else if (u.pathname === "/api/v1/commitment/latestproof" && u.searchParams.get("position") === "2")
      json(res, 200, {
        response: {
          txid: REAL.txid,
          commitment: REAL.commitment,
          merkle_root: REAL.merkle_root,
          ops: REAL.ops,
        },
      });
    else json(res, 200, { error: "Slot allocated: awating first attestation" });
  });
  const c = new MainstayClient({ url, position: 2, token: "t" });
  const p = await c.commitmentProof(fromDisplayHex(REAL.commitment, "c"));
  assert.ok(p?.confirmed, "the real commitment's proof is found and confirmed");
  assert.equal(toDisplayHex(p.txid), REAL.txid);
  verifySlotProof(p.proof, { position: p.proof.position });
  const latest = await c.latestProof();
  assert.ok(latest, "the service has a latest proof");
  verifySlotProof(latest.proof, { position: 2 });
  assert.equal(await c.commitmentProof(new Uint8Array(32)), undefined);
  assert.equal(await new MainstayClient({ url, position: 7, token: "t" }).latestProof(), undefined);
  await close(server);
});

test("oversized answers are refused", async () => {
  const { url, server } = await serve((_req, _b, res) => json(res, 200, { response: "x".repeat(5000) }));
  await assert.rejects(
    new MainstayClient({ url, position: 1, token: "t", maxResponseBytes: 1000 }).send(new Uint8Array(32)),
    code("bad-response", /exceeds 1000/),
  );
  await close(server);
});
