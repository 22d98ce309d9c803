// Operating the SE: configuration from a file and the environment, TLS on the public port, prepaid deposit tokens,
// rate limits per key and per peer, `se status` (exit codes, --json, --tls-ca) before and after the enclave dies,
// and a graceful stop.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { after, before, test } from "node:test";
import { credentials, status } from "@grpc/grpc-js";
import { pub, randomSecret } from "../../client/owner.ts";
import { SeClient } from "../../client/se-client.ts";
import { systemRng } from "../../protocol/rng.ts";
import { ROOT, type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { rawClient, refused, signAs } from "../host/support/calls.ts";
import { assertNoDbChange } from "../host/support/db-snapshot.ts";

const C = status;
const dir = mkdtempSync(path.join(tmpdir(), "se-ops-"));
const certFile = path.join(dir, "cert.pem");
const keyFile = path.join(dir, "key.pem");
const TOKENS = [randomBytes(16).toString("hex"), randomBytes(16).toString("hex")];
let se: SeProcess;
let api: SeClient;
const endpoint = () => `127.0.0.1:${se.port}`;
/**
 * The rate limits the tests configure. The refill rates are low enough that what a flood earns while it runs stays
 * small next to the bursts even on a busy machine, and the assertions allow exactly what the token buckets
 * (host/ratelimit.ts) can have earned over the flood's measured duration.
 */
const LIMITS = { peerBurst: 120, peerRate: 10, connectionBurst: 40, connectionRate: 0.5 };
/** Waits until an address's bucket, whatever is left in it, is full again. */
const refillPeer = () =>
  new Promise((r) => setTimeout(r, Math.ceil((LIMITS.peerBurst / LIMITS.peerRate) * 1000)));

/** Runs `se status` and returns its exit code and output. */
function seStatus(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, "bin/se.js"), "status", ...args],
      { cwd: ROOT, timeout: 20_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

before(async () => {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stdio: "ignore" },
  );
  const tokensFile = path.join(dir, "tokens.txt");
  writeFileSync(
    tokensFile,
    `${TOKENS.map((t) => createHash("sha256").update(t).digest("hex")).join("\n")}\n`,
  );
  const configFile = path.join(dir, "se.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      grpc: { tlsCertFile: certFile, tlsKeyFile: keyFile },
      protocol: { initLock: 300, locktimeInterval: 7 },
      deposit: { guard: "token", tokensFile },
      limits: {
        perKeyBurst: 3,
        perKeyRate: 0.01,
        perPeerBurst: LIMITS.peerBurst,
        perPeerRate: LIMITS.peerRate,
        perConnectionBurst: LIMITS.connectionBurst,
        perConnectionRate: LIMITS.connectionRate,
      },
    }),
  );
  se = await startSeProcess({
    args: ["--config", configFile],
    env: { SE_INIT_LOCK: "250", SE_RATE_PER_KEY_BURST: "4", SE_MAINSTAY_ENABLED: "false" },
  });
  api = new SeClient(endpoint(), {
    rng: systemRng,
    credentials: credentials.createSsl(readFileSync(certFile)),
  });
});
after(async () => {
  api?.close();
  await se?.stop("SIGKILL");
});

test("configuration: the file's settings, the environment over the file", async () => {
  const info = await api.call("getInfo", {});
  assert.equal(info.initLock, 250, "SE_INIT_LOCK over the file's 300");
  assert.equal(info.locktimeInterval, 7, "from the file");
  assert.equal(info.depositGuard, "token", "from the file");
  assert.equal(se.info.tls, true);
});

test("TLS: the public port refuses plaintext and serves a client that trusts its certificate", async () => {
  const plain = new SeClient(endpoint(), { rng: systemRng, deadlineMs: 2000 });
  try {
    await refused(plain.call("getInfo", {}), C.UNAVAILABLE);
  } finally {
    plain.close();
  }
  const [ok, noCa, human, badCa] = await Promise.all([
    seStatus(["--endpoint", endpoint(), "--tls-ca", certFile, "--json"]),
    seStatus(["--endpoint", endpoint(), "--json"]),
    seStatus(["--endpoint", endpoint(), "--tls-ca", certFile]),
    seStatus(["--endpoint", endpoint(), "--tls-ca", path.join(dir, "missing.pem")]),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const out = JSON.parse(ok.stdout);
  assert.equal(out.status, "SERVING");
  assert.equal(out.enclave, "SERVING");
  assert.equal(out.chain, "SERVING");
  assert.equal(out.network, "regtest");
  assert.ok(out.chainHeight >= 432, `se status reports a chain height of at least 432 (${out.chainHeight})`);
  assert.match(out.enclaveInstance, /^[0-9a-f]{32}$/);
  assert.equal(noCa.code, 1);
  assert.equal(JSON.parse(noCa.stdout).status, "UNREACHABLE");
  assert.equal(human.code, 0);
  assert.match(human.stdout, /SE at 127\.0\.0\.1:\d+: SERVING/);
  assert.equal(badCa.code, 2);
  assert.match(badCa.stderr, /cannot read --tls-ca/);
});

test("prepaid deposit tokens: required, checked, and spent by the deposit that uses them", async () => {
  await refused(api.call("getDepositChallenge", {}), C.FAILED_PRECONDITION, /prepaid tokens/);
  const init = (token: string | undefined, secret = randomSecret(systemRng)) =>
    api.call(
      "depositInit",
      signAs(
        "depositInit",
        {
          proofKey: pub(secret),
          guard: token === undefined ? undefined : { $case: "token", value: token },
          auth: undefined,
          holderCommit: { commitment: Buffer.from(systemRng(32)) },
          keygenSessionId: Buffer.from(systemRng(16)),
        },
        secret,
      ),
    );
  await assertNoDbChange(se.dataDir, "deposits without a valid token", async () => {
    await refused(init(undefined), C.UNAUTHENTICATED, /prepaid deposit token/);
    await refused(init("not-a-token"), C.UNAUTHENTICATED, /not valid/);
  });
  const res = await init(TOKENS[0]);
  assert.equal(res.depositId.length, 16);
  await assertNoDbChange(se.dataDir, "a spent token", () =>
    refused(init(TOKENS[0]), C.UNAUTHENTICATED, /already used/),
  );
  assert.equal((await init(TOKENS[1])).depositId.length, 16, "another token still works");
});

test("per-key rate limit: the key's own requests are limited; strangers naming the key cannot spend its budget", async () => {
  const mailbox = (key: Uint8Array, signer: Uint8Array) =>
    api.call(
      "mailboxGet",
      signAs(
        "mailboxGet",
        { receiverProofKey: Buffer.from(key), auth: undefined, discardMessageIds: [] },
        signer,
      ),
    );
  const k = randomSecret(systemRng);
  for (let i = 0; i < 4; i++) await mailbox(pub(k), k);
  await assertNoDbChange(se.dataDir, "a key over its budget", () =>
    refused(mailbox(pub(k), k), C.RESOURCE_EXHAUSTED, /too many requests for this key/),
  );
  const victim = randomSecret(systemRng);
  const stranger = randomSecret(systemRng);
  for (let i = 0; i < 10; i++)
    await refused(mailbox(pub(victim), stranger), C.UNAUTHENTICATED, /does not verify/);
  const res = await mailbox(pub(victim), victim);
  assert.deepEqual(res.items, []);
});

/**
 * Sends `count` junk getInfo requests at once on each of `connections` fresh connections; the answers' codes, and
 * how many seconds the flood took (an upper bound on how long the buckets refilled while it ran).
 */
async function flood(
  connections: number,
  count: number,
): Promise<{ answers: { code: number; details: string }[]; seconds: number }> {
  const junk = Buffer.from([0x0a, 0x05, 0x01]);
  const raws = Array.from({ length: connections }, () =>
    rawClient(endpoint(), credentials.createSsl(readFileSync(certFile))),
  );
  const t0 = performance.now();
  try {
    const answers = await Promise.all(
      raws.flatMap((raw) =>
        Array.from({ length: count }, () =>
          raw.call("getInfo", junk).then(
            () => ({ code: C.OK, details: "" }),
            (err: { code: number; details: string }) => ({ code: err.code, details: err.details }),
          ),
        ),
      ),
    );
    return { answers, seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const raw of raws) raw.close();
  }
}

test("per-peer rate limit: a flood from one address over several connections is cut off, malformed requests included", async () => {
  await assertNoDbChange(se.dataDir, "a flood", async () => {
    // 8 × 35 requests: no connection reaches its burst of 40, the address passes its 120.
    const { answers, seconds } = await flood(8, 35);
    const cut = answers.filter((a) => a.code === C.RESOURCE_EXHAUSTED);
    const mayPass = LIMITS.peerBurst + Math.ceil(LIMITS.peerRate * seconds);
    assert.ok(
      cut.length >= answers.length - mayPass,
      `${answers.length - cut.length} requests got through; the address's bucket holds at most ${mayPass} over the flood's ${seconds.toFixed(1)} s`,
    );
    assert.ok(cut.length > 0, `some requests were cut off (the flood took ${seconds.toFixed(1)} s)`);
    assert.ok(
      cut.every((a) => /from this address/.test(a.details)),
      "by the address's budget",
    );
    assert.ok(
      answers.every((a) => a.code === C.RESOURCE_EXHAUSTED || a.code === C.INVALID_ARGUMENT),
      `every refusal is RESOURCE_EXHAUSTED or INVALID_ARGUMENT (${answers.map((a) => a.code)})`,
    );
  });
  // The budget refills (LIMITS.peerRate requests per second).
  await new Promise((r) => setTimeout(r, Math.ceil(2000 / LIMITS.peerRate)));
  await api.call("getInfo", {});
});

test("per-connection rate limit: one connection cannot spend its address's whole budget", async () => {
  await refillPeer(); // the address's budget full again
  await assertNoDbChange(se.dataDir, "a flood on one connection", async () => {
    // 150 requests: more than the address's 120, but the connection's 40 run out first, and what the
    // connection may not send is not charged to the address (else the address would cut off the last 30).
    const { answers, seconds } = await flood(1, 150);
    const cut = answers.filter((a) => a.code === C.RESOURCE_EXHAUSTED);
    // The connection's bucket starts full and earns connectionRate tokens a second while the flood runs.
    const mayPass = LIMITS.connectionBurst + Math.floor(LIMITS.connectionRate * seconds);
    assert.ok(
      answers.length - cut.length <= mayPass,
      `${answers.length - cut.length} requests got through; the connection's bucket holds at most ${mayPass} over the flood's ${seconds.toFixed(1)} s`,
    );
    assert.ok(
      answers.length - cut.length >= LIMITS.connectionBurst,
      "the connection's whole burst got through",
    );
    assert.ok(
      cut.every((a) => /on this connection/.test(a.details)),
      "by the connection's budget only",
    );
  });
  // Another connection from the same address still gets in.
  await api.call("getInfo", {});
});

test("se status reports an SE whose enclave died as not serving (exit 1), and an absent SE as unreachable", async () => {
  process.kill(se.enclavePid, "SIGKILL");
  let out: { code: number; stdout: string } = { code: 0, stdout: "" };
  for (let i = 0; i < 40; i++) {
    out = await seStatus(["--endpoint", endpoint(), "--tls-ca", certFile, "--json"]);
    if (out.code !== 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(out.code, 1);
  const st = JSON.parse(out.stdout);
  assert.equal(st.status, "NOT_SERVING");
  assert.equal(st.enclave, "NOT_SERVING");
  assert.equal(st.chain, "SERVING");
  await refused(api.call("getInfo", {}), C.UNAVAILABLE, /enclave is unavailable/);

  const gone = await seStatus(["--endpoint", "127.0.0.1:1", "--json"]);
  assert.equal(gone.code, 1);
  assert.equal(JSON.parse(gone.stdout).status, "UNREACHABLE");
});

test("SIGTERM stops the host gracefully (exit 0)", async () => {
  const { code, signal } = await se.stop("SIGTERM");
  assert.equal(signal, null);
  assert.equal(code, 0);
});
