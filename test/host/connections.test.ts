// Connection limits of the public port (audit #19.6), against a real server in a child process over real
// sockets: connections beyond the per-address cap are closed while other clients are served, idle HTTP/2
// connections are closed, and calls that stall one byte short of their message are cut with their connection,
// the memory they held given back. Every wait is on an event, with generous ceilings.
import assert from "node:assert/strict";
import { type ChildProcess, fork } from "node:child_process";
import http2 from "node:http2";
import net from "node:net";
import path from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { credentials, Metadata, status } from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../../proto/gen/grpc/health/v1/health.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
});

interface Mem {
  rss: number;
  peakRss: number;
  external: number;
  arrayBuffers: number;
  heapUsed: number;
  connections: number;
  refused: number;
}

async function startServer(env: Record<string, string>) {
  const child = fork(path.join(here, "support", "public-server-main.ts"), [], {
    execArgv: ["--import", "tsx", "--expose-gc"],
    env: { ...process.env, SE_LOG_LEVEL: "silent", ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m: { port: number }) => resolve(m.port));
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  const mem = () =>
    new Promise<Mem>((resolve) => {
      child.once("message", (m: Mem) => resolve(m));
      child.send({ op: "mem" });
    });
  return { child, port, mem };
}

function health(port: number): Promise<number> {
  const client = new HealthClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.check({ service: "" }, new Metadata(), { deadline: Date.now() + 60_000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res!.status);
    });
  });
}

/** Resolves when `socket` is closed, with the ms it took; rejects after `ceilingMs`. */
function closed(socket: net.Socket | http2.ClientHttp2Session, ceilingMs: number): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${ceilingMs} ms`)), ceilingMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.on("error", () => {}); // a reset once the server closes it
    s.once("error", reject);
  });
}

test("connections beyond the per-address cap are closed on arrival; other clients are still served", async () => {
  const { port, mem } = await startServer({ SE_GRPC_MAX_CONNECTIONS_PER_PEER: "4" });
  const open = await Promise.all(Array.from({ length: 4 }, () => connect(port)));
  // The server counts a connection when it accepts it: wait until it saw all four.
  for (let i = 0; (await mem()).connections < 4; i++) {
    assert.ok(i < 600, "the server never saw the four connections");
    await new Promise((r) => setTimeout(r, 50));
  }
  const extra = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
  await Promise.all(extra.map((s) => closed(s, 60_000)));
  for (const s of open) assert.equal(s.destroyed, false, "the first four stay open");
  const m = await mem();
  assert.equal(m.connections, 4);
  assert.equal(m.refused, 20);
  // A raw TCP connection that never speaks HTTP/2 holds a slot: freeing one lets a real client in.
  open.pop()!.destroy();
  for (let i = 0; (await mem()).connections > 3; i++) {
    assert.ok(i < 600, "the server never saw the connection close");
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await health(port), HealthCheckResponse_ServingStatus.SERVING);
  for (const s of open) s.destroy();
});

test("an idle HTTP/2 connection is closed after the idle limit", async () => {
  const { port } = await startServer({ SE_GRPC_IDLE_TIMEOUT_MS: "500" });
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
  const ms = await closed(session, 60_000);
  await goaway;
  assert.ok(ms >= 400, `closed after ${ms} ms, before the idle limit`);
});

test("calls stalled one byte short of their message are cut after the receive limit and their memory freed", async () => {
  const CALLS = 200;
  const PER_CONNECTION = 8;
  const LENGTH = 1 << 20; // the largest message the port accepts
  const { port, mem } = await startServer({
    SE_GRPC_RECEIVE_TIMEOUT_MS: "3000",
    SE_GRPC_MAX_CONCURRENT_STREAMS: String(PER_CONNECTION),
    SE_GRPC_MAX_CONNECTIONS_PER_PEER: "64",
  });
  const body = Buffer.alloc(5 + LENGTH - 1, 7);
  body[0] = 0;
  body.writeUInt32BE(LENGTH, 1);
  const before = await mem();
  const round = async (label: string) => {
    const sessions: http2.ClientHttp2Session[] = [];
    const statuses: Array<Promise<string | undefined>> = [];
    const written: Array<Promise<void>> = [];
    for (let c = 0; c < CALLS / PER_CONNECTION; c++) {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on("error", () => {});
      sessions.push(session);
      for (let i = 0; i < PER_CONNECTION; i++) {
        const stream = session.request({
          ":method": "POST",
          ":path": "/statechain.v1.StatechainService/GetInfo",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("error", () => {});
        statuses.push(
          new Promise((resolve) => {
            stream.once("response", (h) => resolve(h["grpc-status"] as string | undefined));
            stream.once("close", () => resolve(undefined));
          }),
        );
        // Never ended: the message lacks its last byte.
        written.push(new Promise((resolve) => stream.write(body, () => resolve())));
      }
    }
    const cut = await Promise.all(sessions.map((s) => closed(s, 120_000)));
    const during = await mem();
    const codes = await Promise.all(statuses);
    // Buffers are released by collections after the sessions are torn down: sample until they are back (or a ceiling).
    let after = await mem();
    for (let i = 0; i < 100 && after.external - before.external >= 32 << 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await mem();
    }
    const mib = (n: number) => Math.round(n / 1048576);
    console.log(
      `${label}: ${CALLS} stalled calls × ${LENGTH - 1} bytes; host RSS ${mib(before.rss)} MiB before, peak ${mib(during.peakRss)} MiB, ` +
        `${mib(after.rss)} MiB after; buffers (external) ${mib(before.external)} → ${mib(after.external)} MiB; ` +
        `connections cut after ${Math.min(...cut)}–${Math.max(...cut)} ms`,
    );
    assert.ok(Math.min(...cut) >= 2000, "no connection was cut before the receive limit");
    const deadline = codes.filter((c) => c === String(status.DEADLINE_EXCEEDED)).length;
    assert.ok(
      codes.every((c) => c === undefined || c === String(status.DEADLINE_EXCEEDED)),
      `unexpected statuses ${codes}`,
    );
    console.log(`${deadline} of ${CALLS} stalled calls saw DEADLINE_EXCEEDED before the cut`);
    assert.equal(after.connections, 0);
    // What the stalled calls held is given back: buffers within 32 MiB of the start (they held ~200 MiB).
    assert.ok(
      after.external - before.external < 32 << 20,
      `buffers grew ${mib(after.external - before.external)} MiB`,
    );
    assert.ok(after.rss - before.rss < 400 << 20, `RSS grew ${mib(after.rss - before.rss)} MiB`);
    assert.equal(await health(port), HealthCheckResponse_ServingStatus.SERVING);
    void written;
    return after;
  };
  const first = await round("round 1");
  // A second wave reuses what the first gave back: RSS stays where the first peak left it.
  const second = await round("round 2");
  assert.ok(
    second.rss - first.rss < 64 << 20,
    `RSS grew ${Math.round((second.rss - first.rss) / 1048576)} MiB more in the second round`,
  );
});
