import * as bitcoin from "bitcoinjs-lib";
import type { HostConfig } from "./config.ts";

/** bitcoinjs network parameters (address encodings) of the configured chain. */
export function networkOf(cfg: Pick<HostConfig, "network">): bitcoin.Network {
  if (cfg.network === "bitcoin") return bitcoin.networks.bitcoin;
  if (cfg.network === "regtest") return bitcoin.networks.regtest;
  return bitcoin.networks.testnet;
}
