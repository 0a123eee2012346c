/**
 * Write-backs of one process in batches (group commit): results handed over
 * while a write is in flight wait for it to end, then go in one call
 * together. Alone, a result is written at once; under load one statement and
 * one commit serve many requests. A single delivery's write-back is almost
 * all fixed cost (the metrics upserts, the attempt log's trigger, the
 * commit), so notify's inline attempts under load cost Postgres a fraction
 * of one each.
 *
 * @module
 */
import type { Sql } from "../db/sessions.ts";
import { databaseUnavailable } from "../db/unavailable.ts";
import { type DeliveryResult, recordResultIds } from "./outbox.ts";

/**
 * Writes results back under the counters' `instance` label; answers how many
 * were written (a lease lost or a cancelled row is not).
 */
export type ResultWriter = (
  results: DeliveryResult[],
  options?: { instance?: string },
) => Promise<number>;

interface Waiting {
  results: DeliveryResult[];
  instance: string;
  resolve: (recorded: number) => void;
  reject: (error: unknown) => void;
}

/**
 * One writer per process, shared by its requests (notify's inline attempts;
 * a worker's rounds are large already and write alone). What waits is
 * bounded by its callers, each of which awaits its own write.
 *
 * @example
 * ```ts
 * const write = createResultWriter(sql);
 * const recorded = await write(results, { instance: "eu-1" });
 * ```
 */
export function createResultWriter(
  sql: Sql,
  options: {
    /** Rows per call at most; a caller with more goes alone. @default 2_000 */
    maxRows?: number;
  } = {},
): ResultWriter {
  const maxRows = options.maxRows ?? 2_000;
  const waiting: Waiting[] = [];
  let writing = false;

  const writeWhileWaiting = async () => {
    writing = true;
    try {
      while (waiting.length > 0) await _write(sql, _nextBatch(waiting, maxRows));
    } finally {
      writing = false;
    }
  };

  return (results, { instance = "" } = {}) => {
    if (results.length === 0) return Promise.resolve(0);
    return new Promise((resolve, reject) => {
      waiting.push({ results, instance, resolve, reject });
      if (!writing) void writeWhileWaiting();
    });
  };
}

/**
 * The first waiting callers, in order, up to `maxRows` rows (the first one
 * whatever its size), all under the first one's instance label. A caller
 * holding a delivery already in the batch (a lease lost and the row claimed
 * again in this process) waits for the next: each answer counts only its own
 * lease's row.
 */
function _nextBatch(waiting: Waiting[], maxRows: number): Waiting[] {
  const batch: Waiting[] = [];
  const ids = new Set<string>();
  let rows = 0;
  for (let i = 0; i < waiting.length;) {
    const w = waiting[i];
    const fits = batch.length === 0 ||
      (rows + w.results.length <= maxRows && w.instance === batch[0].instance);
    if (!fits || w.results.some((r) => ids.has(r.id))) {
      i++;
      continue;
    }
    waiting.splice(i, 1);
    batch.push(w);
    rows += w.results.length;
    for (const r of w.results) ids.add(r.id);
  }
  return batch;
}

/** One call for the batch; if it fails for a reason of its own, each caller's results alone. */
async function _write(sql: Sql, batch: Waiting[]) {
  const instance = batch[0].instance;
  try {
    const written = await recordResultIds(sql, batch.flatMap((w) => w.results), { instance });
    for (const w of batch) w.resolve(w.results.filter((r) => written.has(r.id)).length);
  } catch (error) {
    if (batch.length === 1 || databaseUnavailable(error)) {
      for (const w of batch) w.reject(error);
      return;
    }
    // One request's results must not sink another's.
    for (const w of batch) {
      await recordResultIds(sql, w.results, { instance }).then(
        (written) => w.resolve(written.size),
        w.reject,
      );
    }
  }
}
