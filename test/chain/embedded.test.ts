// The shared backend behaviour on the in-process bcoin node.
import { EmbeddedChain } from "../../chain/embedded.ts";
import { backendSuite } from "./backend-suite.ts";

backendSuite("embedded", async (node) => ({ backend: new EmbeddedChain(node), close: async () => {} }));
