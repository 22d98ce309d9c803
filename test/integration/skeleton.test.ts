// The walking skeleton: real `se start` process, real enclave child on a Unix socket, real gRPC health checks.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { credentials, Metadata } from "@grpc/grpc-js";
import {
  HealthClient,
  HealthCheckResponse_ServingStatus as Serving,
} from "../../proto/gen/grpc/health/v1/health.ts";
import { StatechainServiceClient } from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { isAlive, type SeProcess, startSeProcess, waitUntil } from "../helpers/se-process.ts";

function checkWithMetadata(
  client: HealthClient,
  service: string,
): Promise<{ status: Serving; md: Metadata }> {
  return new Promise((resolve, reject) => {
    let md = new Metadata();
    const call = client.check({ service }, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) =>
      err ? reject(err) : resolve({ status: res.status, md }),
    );
    call.on("metadata", (m) => {
      md = m;
    });
  });
}

describe("se start (simulator)", () => {
  let se: SeProcess;
  let health: HealthClient;

  before(async () => {
    se = await startSeProcess();
    health = new HealthClient(`127.0.0.1:${se.port}`, credentials.createInsecure());
  });
  after(async () => {
    health?.close();
    await se?.stop();
  });

  test("health reports the SE, enclave and chain as serving, with the chain height", async () => {
    for (const service of ["", "statechain.v1.StatechainService", "enclave", "chain"]) {
      const { status, md } = await checkWithMetadata(health, service);
      assert.equal(status, Serving.SERVING, `service "${service}"`);
      assert.ok(Number(md.get("chain-height")[0]) >= 101, "initial blocks are mined");
      assert.match(String(md.get("enclave-instance-id")[0]), /^[0-9a-f]{32}$/);
    }
    await assert.rejects(unary(health, health.check, { service: "nope" }), /NOT_FOUND|unknown service/);
  });

  test("the enclave listens on a Unix socket only and its PCRs are published", async () => {
    const socket = String(se.info.enclaveSocket);
    assert.ok(existsSync(socket), "socket file exists");
    assert.ok(isAlive(se.enclavePid), "the enclave process is alive");
    // The enclave process holds no TCP listening socket.
    const tcp = ["/proc/net/tcp", "/proc/net/tcp6"].map((f) => readFileSync(f, "utf8")).join("\n");
    const inodes = new Set(
      tcp
        .split("\n")
        .slice(1)
        .map((l) => l.trim().split(/\s+/))
        .filter((c) => c[3] === "0A")
        .map((c) => c[9]),
    );
    const fdDir = `/proc/${se.enclavePid}/fd`;
    const { readdirSync, readlinkSync } = await import("node:fs");
    const sockets = readdirSync(fdDir)
      .map((fd) => {
        try {
          return readlinkSync(path.join(fdDir, fd));
        } catch {
          return "";
        }
      })
      .map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1])
      .filter((x): x is string => Boolean(x));
    assert.ok(!sockets.some((s) => inodes.has(s)), "enclave has no listening TCP socket");
    const api = new StatechainServiceClient(`127.0.0.1:${se.port}`, credentials.createInsecure());
    try {
      const info = await unary(api, api.getInfo, {});
      assert.equal(info.network, "regtest");
      assert.equal(info.enclave?.attestationMode, "simulator");
      assert.equal(info.enclave?.expectedPcrs[0]?.pcr0, se.info.pcr0);
      assert.match(String(se.info.pcr0), /^[0-9a-f]{96}$/);
    } finally {
      api.close();
    }
  });

  test("SIGTERM stops the host and the enclave with exit code 0", async () => {
    const { code } = await se.stop("SIGTERM");
    assert.equal(code, 0);
    // A deadline, not a duration: the wait ends as soon as the enclave is gone, however busy the machine is.
    await waitUntil(() => !isAlive(se.enclavePid), 60_000, "enclave exit");
  });
});

test("the enclave does not outlive a host killed with SIGKILL", async () => {
  const se = await startSeProcess();
  await se.stop("SIGKILL");
  // The enclave notices its stdin closing (--exit-with-stdin) and exits; on a busy machine that can take more than
  // a few seconds, so wait on the condition with a generous deadline.
  await waitUntil(() => !isAlive(se.enclavePid), 60_000, "orphaned enclave to exit");
});
