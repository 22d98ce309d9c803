// A single-key P2WPKH test wallet on the embedded regtest chain: mines itself coins and pays from them.
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { Transaction } from "bitcoinjs-lib";
import type { DevChain, Utxo } from "../../chain/backend.ts";
import { RegtestNode } from "../../chain/regtest-node.ts";
import {
  estimateVsize,
  feeForVsize,
  p2wpkhScript,
  signP2wpkhInputs,
  txidFromHex,
  type WalletUtxo,
} from "../../protocol/tx/index.ts";

export function startRegtest(): Promise<RegtestNode> {
  return RegtestNode.start({ dataDir: "", rpcPort: 0, initialBlocks: 432 });
}

export class TestWallet {
  readonly sk: Uint8Array;
  readonly pk: Uint8Array;
  readonly script: Uint8Array;

  constructor(label: string) {
    this.sk = sha256(new TextEncoder().encode(`test-wallet/${label}`));
    this.pk = secp256k1.getPublicKey(this.sk, true);
    this.script = p2wpkhScript(this.pk);
  }

  /** Mines `n` coinbases to this wallet and matures them; returns the spendable coins. */
  async mineCoins(chain: DevChain, n = 1): Promise<Utxo[]> {
    await chain.mine(n, this.script);
    await chain.mine(100);
    return (await chain.findUtxos(this.script)).filter((u) => u.confirmations >= 100 || !u.coinbase);
  }

  /** A signed transaction spending `coins` to `outputs`, change (if any) back here, at `feeRate` sat/vB. */
  pay(
    coins: readonly WalletUtxo[],
    outputs: { script: Uint8Array; valueSat: bigint }[],
    feeRate = 1,
    opts: { change?: boolean; feeSat?: bigint } = {},
  ): { raw: Uint8Array; txid: string; feeSat: bigint } {
    const tx = new Transaction();
    tx.version = 2;
    for (const c of coins) tx.addInput(txidFromHex(c.txid), c.vout, 0xffffffff);
    for (const o of outputs) tx.addOutput(o.script, o.valueSat);
    const change = opts.change ?? true;
    if (change) tx.addOutput(this.script, 0n);
    const fee =
      opts.feeSat ??
      feeForVsize(
        estimateVsize(
          tx,
          coins.map(() => "p2wpkh"),
        ),
        feeRate,
      );
    const total = coins.reduce((s, c) => s + c.valueSat, 0n);
    const paid = outputs.reduce((s, o) => s + o.valueSat, 0n);
    if (change) tx.outs[tx.outs.length - 1]!.value = total - paid - fee;
    const raw = signP2wpkhInputs(
      new Uint8Array(tx.toBuffer()),
      coins.map((c, i) => ({ inputIndex: i, prevout: c, privateKey: this.sk })),
    );
    return { raw, txid: Transaction.fromBuffer(raw).getId(), feeSat: change ? fee : total - paid };
  }
}
