// Keeps the sparse Merkle tree in step with the statechains table. The table is the source of truth and is
// written in each protocol step's transaction; the tree (its own insert-only tables) follows right after, and
// at start-up any state a crash left unwritten is written then. Only confirmed coins have a leaf.

import type { Db } from "../common/sqlite.ts";
import { StatechainStatus } from "../proto/gen/common.ts";
import { outpointFromBytes } from "../protocol/outpoint.ts";
import type { SparseMerkleTree } from "../protocol/smt/tree.ts";
import { statechainKey } from "../protocol/statechain.ts";
import type { StateTree } from "./api/deps.ts";

const IN_TREE = [
  StatechainStatus.STATECHAIN_STATUS_ACTIVE,
  StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
  StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
  StatechainStatus.STATECHAIN_STATUS_CLOSED,
  StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP,
  StatechainStatus.STATECHAIN_STATUS_TAINTED,
];

export function treeSync(db: Db, tree: SparseMerkleTree): StateTree {
  let running: Promise<void> | undefined;
  let again = false;
  const once = async () => {
    for (;;) {
      const rows = await db.all<{ statechain_id: Buffer; state_hash: Buffer }>(
        `SELECT statechain_id, state_hash FROM statechains
         WHERE status IN (${IN_TREE.join(",")}) AND (smt_leaf IS NULL OR smt_leaf != state_hash) LIMIT 500`,
      );
      if (rows.length === 0) return;
      await tree.update(
        rows.map((r) => ({ key: statechainKey(outpointFromBytes(r.statechain_id)), value: r.state_hash })),
      );
      await db.transaction(async (q) => {
        for (const r of rows) {
          await q.run("UPDATE statechains SET smt_leaf = ? WHERE statechain_id = ? AND state_hash = ?", [
            r.state_hash,
            r.statechain_id,
            r.state_hash,
          ]);
        }
      });
    }
  };
  return {
    // Concurrent callers share one pass; a call during a pass schedules one more so nothing is missed.
    async sync() {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        try {
          do {
            again = false;
            await once();
          } while (again);
        } finally {
          running = undefined;
        }
      })();
      return running;
    },
  };
}
