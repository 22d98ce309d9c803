// Remote backends against answers shaped exactly like Bitcoin Core's and Esplora's, for the paths bcoin's RPC
// server cannot exercise (Core's reject codes, scantxoutset, estimatesmartfee, auth), and the reject table.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { ChainError } from "../../chain/backend.ts";
import { BitcoindChain } from "../../chain/bitcoind.ts";
import { EsploraChain } from "../../chain/esplora.ts";
import { classifyReject, classifyRpcReject } from "../../chain/reject.ts";
import { TestWallet } from "./regtest-wallet.ts";

test("reject reasons from bcoin and Bitcoin Core map to one vocabulary", () => {
  const cases: [string, ChainError["code"]][] = [
    ["non-final", "non-final"],
    ["non-BIP68-final", "non-final"],
    ["bad-txns-inputs-spent", "conflict"],
    ["txn-mempool-conflict", "conflict"],
    ["insufficient fee, rejecting replacement 1234; new feerate 0.00001 <= old feerate 0.00002", "conflict"],
    ["bad-txns-inputs-missingorspent", "missing-inputs"],
    ["Missing inputs", "missing-inputs"],
    ["txn-already-in-mempool", "already-known"],
    ["txn-already-known", "already-known"],
    ["Transaction already in block chain", "already-known"],
    ["Transaction outputs already in utxo set", "already-known"],
    ["insufficient priority", "fee"],
    ["min relay fee not met, 100 < 141", "fee"],
    ["mempool min fee not met, 100 < 1410", "fee"],
    ["absurdly-high-fee", "fee"],
    ["max-fee-exceeded", "fee"],
    ["dust", "nonstandard"],
    ["scriptpubkey", "nonstandard"],
    ["bad-txns-nonstandard-inputs", "nonstandard"],
    ["bad-witness-nonstandard", "nonstandard"],
    ["tx-size-small", "nonstandard"],
    ["version", "nonstandard"],
    [
      "non-mandatory-script-verify-flag (Signature must be zero for failed CHECK(MULTI)SIG operation)",
      "invalid",
    ],
    ["mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)", "invalid"],
    ["bad-txns-in-belowout", "invalid"],
  ];
  for (const [reason, code] of cases) assert.equal(classifyReject(reason), code, reason);
  assert.equal(classifyRpcReject(-27, "anything"), "already-known");
  assert.equal(classifyRpcReject(-22, "TX decode failed"), "invalid");
  assert.equal(classifyRpcReject(-25, "Missing inputs"), "missing-inputs");
  assert.equal(classifyRpcReject(-25, "bad-txns-whatever"), "missing-inputs");
});

/** A JSON-RPC server answering like Bitcoin Core 27 (HTTP 500 + error object on failures). */
class FakeCore {
  server!: Server;
  url = "";
  calls: string[] = [];
  answers = new Map<
    string,
    (params: unknown[]) => { result?: unknown; error?: { code: number; message: string } }
  >();

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from("alice:secret").toString("base64")}`) {
        res.writeHead(401);
        res.end();
        return;
      }
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        const { method, params, id } = JSON.parse(body) as { method: string; params: unknown[]; id: number };
        this.calls.push(method);
        const answer = this.answers.get(method)?.(params) ?? {
          error: { code: -32601, message: "Method not found" },
        };
        res.writeHead(answer.error ? (answer.error.code === -32601 ? 404 : 500) : 200, {
          "content-type": "application/json",
        });
        res.end(JSON.stringify({ result: answer.result ?? null, error: answer.error ?? null, id }));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }
}

// A signed transaction to send (its content does not matter to these servers).
const wallet = new TestWallet("remote-shapes");
const RAW = Buffer.from(
  wallet.pay([{ txid: "ff".repeat(32), vout: 0, valueSat: 100_000n, script: wallet.script }], [], 1).raw,
).toString("hex");

describe("BitcoindChain against Bitcoin Core's answers", () => {
  const core = new FakeCore();
  let chain: BitcoindChain;
  before(async () => {
    await core.start();
    core.answers.set("getnetworkinfo", () => ({
      result: { subversion: "/Satoshi:27.0.0/", relayfee: 0.00001 },
    }));
    core.answers.set("getblockcount", () => ({ result: 800_010 }));
    core.answers.set("getmempoolentry", () => ({
      error: { code: -5, message: "Transaction not in mempool" },
    }));
    chain = new BitcoindChain({
      url: core.url,
      user: "alice",
      password: "secret",
      network: "regtest",
      timeoutMs: 2000,
    });
  });
  after(async () => {
    await chain.close();
    await new Promise((r) => core.server.close(r));
  });

  test("sendrawtransaction refusals carry Core's code and reason", async () => {
    const cases: [number, string, ChainError["code"]][] = [
      [-26, "non-final", "non-final"],
      [-26, "non-BIP68-final", "non-final"],
      [-25, "bad-txns-inputs-missingorspent", "missing-inputs"],
      [-26, "txn-mempool-conflict", "conflict"],
      [-27, "Transaction outputs already in utxo set", "already-known"],
      [-26, "min relay fee not met, 100 < 141", "fee"],
      [-26, "dust", "nonstandard"],
      [-22, "TX decode failed", "invalid"],
    ];
    for (const [code, message, expected] of cases) {
      core.answers.set("sendrawtransaction", () => ({ error: { code, message } }));
      await assert.rejects(chain.broadcast(Buffer.from(RAW, "hex")), (err: unknown) => {
        assert.ok(err instanceof ChainError, `a bitcoind error is a ChainError (${err})`);
        assert.equal(err.code, expected, message);
        assert.match(err.message, new RegExp(message.replace(/[()]/g, ".")));
        return true;
      });
    }
    core.answers.set("sendrawtransaction", (p) => ({ result: `txid-of-${String(p[0]).length}` }));
    const txid = await chain.broadcast(Buffer.from(RAW, "hex"));
    assert.equal(txid.length, 64);
    // Already in the mempool: reported before sending.
    core.answers.set("getmempoolentry", () => ({ result: { vsize: 141 } }));
    await assert.rejects(chain.broadcast(Buffer.from(RAW, "hex")), /already in the mempool/);
    core.answers.set("getmempoolentry", () => ({
      error: { code: -5, message: "Transaction not in mempool" },
    }));
  });

  test("getrawtransaction (mempool and confirmed shapes), gettxout, scantxoutset", async () => {
    const id = "11".repeat(32);
    core.answers.set("getrawtransaction", () => ({
      error: { code: -5, message: "No such mempool or blockchain transaction" },
    }));
    assert.equal(await chain.getTx(id), undefined);
    core.answers.set("getrawtransaction", () => ({ result: { txid: id, hex: "00", vsize: 1 } }));
    assert.deepEqual(await chain.getTxStatus(id), { confirmations: 0, inMempool: true });
    core.answers.set("getrawtransaction", () => ({
      result: { txid: id, hex: "00", blockhash: "22".repeat(32), confirmations: 3 },
    }));
    core.answers.set("getblockheader", () => ({ result: { hash: "22".repeat(32), height: 800_008 } }));
    assert.deepEqual(await chain.getTxStatus(id), {
      confirmations: 3,
      blockHeight: 800_008,
      blockHash: "22".repeat(32),
      inMempool: false,
    });

    core.answers.set("gettxout", () => ({
      result: {
        bestblock: "22".repeat(32),
        confirmations: 5,
        value: 0.1234567,
        scriptPubKey: { hex: "0014a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4", type: "witness_v0_keyhash" },
        coinbase: false,
      },
    }));
    const u = await chain.getUtxo(id, 1);
    assert.equal(u?.valueSat, 12_345_670n);
    assert.equal(u?.confirmations, 5);

    core.answers.set("scantxoutset", (p) => {
      assert.deepEqual(p, ["start", [{ desc: "raw(0014a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4)" }]]);
      return {
        result: {
          success: true,
          txouts: 100,
          height: 800_010,
          bestblock: "22".repeat(32),
          unspents: [
            {
              txid: "33".repeat(32),
              vout: 0,
              scriptPubKey: "0014a1b2…",
              desc: "raw(…)",
              amount: 0.5,
              coinbase: false,
              height: 800_001,
            },
            {
              txid: "44".repeat(32),
              vout: 2,
              scriptPubKey: "0014a1b2…",
              desc: "raw(…)",
              amount: 0.25,
              coinbase: true,
              height: 800_010,
            },
          ],
          total_amount: 0.75,
        },
      };
    });
    // The first one is already spent by a mempool transaction.
    core.answers.set("gettxout", (p) => ({ result: p[0] === "33".repeat(32) ? null : { value: 0.25 } }));
    const found = await chain.findUtxos(Buffer.from("0014a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4", "hex"));
    assert.deepEqual(
      found.map((x) => [x.txid, x.vout, x.valueSat, x.confirmations, x.coinbase]),
      [["44".repeat(32), 2, 25_000_000n, 1, true]],
    );
  });

  test("estimatesmartfee: BTC/kvB → sat/vB, fallback without data", async () => {
    core.answers.set("estimatesmartfee", () => ({ result: { feerate: 0.00012, blocks: 2 } }));
    assert.equal(await chain.estimateFeeRate(2), 12);
    core.answers.set("estimatesmartfee", () => ({
      result: { errors: ["Insufficient data or no feerate found"], blocks: 0 },
    }));
    assert.equal(await chain.estimateFeeRate(2), 1);
  });

  test("wrong credentials and a dead server are 'unavailable'", async () => {
    const bad = new BitcoindChain({ url: core.url, user: "alice", password: "nope", network: "regtest" });
    await assert.rejects(
      bad.tipHeight(),
      (e: unknown) => e instanceof ChainError && e.code === "unavailable",
    );
    await bad.close();
    const dead = new BitcoindChain({
      url: "http://127.0.0.1:1/",
      user: "a",
      password: "b",
      network: "regtest",
      timeoutMs: 500,
    });
    await assert.rejects(
      dead.tipHeight(),
      (e: unknown) => e instanceof ChainError && e.code === "unavailable",
    );
    await dead.close();
    // A server that accepts and never answers: the request's deadline fires.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const slow = new BitcoindChain({
      url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`,
      user: "a",
      password: "b",
      network: "regtest",
      timeoutMs: 200,
    });
    await assert.rejects(
      slow.tipHeight(),
      (e: unknown) => e instanceof ChainError && /no answer within 200 ms/.test(e.message),
    );
    await slow.close();
    silent.closeAllConnections();
    await new Promise((r) => silent.close(r));
  });
});

describe("EsploraChain against Esplora's answers", () => {
  let server: Server;
  let chain: EsploraChain;
  let routes: Record<string, [number, string]> = {};
  before(async () => {
    server = createServer((req, res) => {
      const [status, body] = routes[`${req.method} ${req.url}`] ?? [404, "Not found"];
      res.writeHead(status);
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    chain = new EsploraChain({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/`,
      network: "regtest",
      timeoutMs: 2000,
    });
  });
  after(async () => {
    await chain.close();
    await new Promise((r) => server.close(r));
  });

  test("fee estimates pick the nearest target at or beyond the one asked", async () => {
    routes = {
      "GET /api/fee-estimates": [
        200,
        '{"2":87.882,"3":87.882,"4":87.882,"6":68.285,"10":1.027,"20":1.027,"144":1.027,"504":1.027,"1008":1.027}',
      ],
    };
    assert.equal(await chain.estimateFeeRate(1), 87.882);
    assert.equal(await chain.estimateFeeRate(5), 68.285);
    assert.equal(await chain.estimateFeeRate(2000), 1.027);
    routes = { "GET /api/fee-estimates": [200, "{}"] };
    assert.equal(await chain.estimateFeeRate(2), 1);
  });

  test("POST /tx refusals relayed from bitcoind, JSON or plain", async () => {
    const tx = Buffer.from(RAW, "hex");
    routes = { "POST /api/tx": [400, 'sendrawtransaction RPC error: {"code":-26,"message":"non-final"}'] };
    await assert.rejects(
      chain.broadcast(tx),
      (e: unknown) => e instanceof ChainError && e.code === "non-final",
    );
    routes = {
      "POST /api/tx": [
        400,
        'sendrawtransaction RPC error: {"code":-25,"message":"bad-txns-inputs-missingorspent"}',
      ],
    };
    await assert.rejects(
      chain.broadcast(tx),
      (e: unknown) => e instanceof ChainError && e.code === "missing-inputs",
    );
    routes = { "POST /api/tx": [400, "sendrawtransaction RPC error: min relay fee not met"] };
    await assert.rejects(chain.broadcast(tx), (e: unknown) => e instanceof ChainError && e.code === "fee");
    routes = { "POST /api/tx": [503, "upstream down"] };
    await assert.rejects(
      chain.broadcast(tx),
      (e: unknown) => e instanceof ChainError && e.code === "unavailable",
    );
    routes = { "GET /api/blocks/tip/height": [200, "<html>"] };
    await assert.rejects(
      chain.tipHeight(),
      (e: unknown) => e instanceof ChainError && e.code === "bad-response",
    );
  });
});
