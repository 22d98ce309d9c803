// A regtest chain in a process of its own (bcoin in memory), for tests that kill and restart the host: the chain
// must outlive it. Prints its bitcoind-compatible RPC endpoint as one JSON line, then serves until SIGTERM.
import { RegtestNode } from "../../../chain/regtest-node.ts";

const node = await RegtestNode.start({ dataDir: "", rpcPort: 0, initialBlocks: 432 });
process.stdout.write(`${JSON.stringify(node.rpc)}\n`);
const stop = () => void node.close().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
