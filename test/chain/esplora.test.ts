// The shared backend behaviour through Esplora's REST API, against a local Esplora-shaped server over bcoin.
import { EsploraChain } from "../../chain/esplora.ts";
import { backendSuite } from "./backend-suite.ts";
import { FakeEsplora } from "./esplora-server.ts";

backendSuite("esplora", async (node) => {
  const server = await FakeEsplora.start(node);
  const backend = new EsploraChain({
    url: server.url,
    network: "regtest",
    pollIntervalMs: 25,
    timeoutMs: 5000,
  });
  return {
    backend,
    close: async () => {
      await backend.close();
      await server.close();
    },
  };
});
