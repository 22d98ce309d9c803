// The shared backend behaviour through JSON-RPC, against bcoin's bitcoind-compatible RPC server on loopback.
import { BitcoindChain } from "../../chain/bitcoind.ts";
import { backendSuite } from "./backend-suite.ts";

backendSuite("bitcoind RPC (bcoin server)", async (node) => {
  const backend = new BitcoindChain({ ...node.rpc, network: "regtest", pollIntervalMs: 25, timeoutMs: 5000 });
  return { backend, close: () => backend.close() };
});
