/**
 * The per-user guessing budget shared by every host through PostgreSQL, so that adding hosts does not
 * multiply what a guesser gets: a token bucket per username (burst, refill per second) kept in
 * nstp_guesses and updated atomically by each failed authentication, on the database's clock.
 *
 * The check itself never waits for the database: each host keeps a bounded local view. A failure
 * takes a token locally at once, then the database's answer (which counts every host's failures)
 * replaces the local value; a host whose failure empties a bucket NOTIFYs the others, which fetch that
 * row. While the database is down each host still enforces its own view (never more than one host's
 * budget per host), and the shared rows catch up as failures are recorded again.
 *
 * A row exists per username ever guessed wrong; once its bucket has refilled (burst / refill seconds
 * after its last failure, whatever tokens it had) it says no more than a missing row does, so hosts
 * delete such rows as they record failures, a bounded batch at a time (prune), and the table holds
 * about the usernames guessed within that window.
 */
import type postgres from "postgres";
import { type Logger, fromHex, toHex, utf8 } from "@nstp/core";
import { silentLogger } from "@nstp/core/node";
import { LeakyBuckets } from "../limiter.ts";

export const GUESS_CHANNEL = "nstp_guesses";
/** Failures recorded between two prunes. */
export const PRUNE_EVERY = 64;
/**
 * Rows one prune deletes at most: four times the rows the failures since the last could have added,
 * so the table shrinks back while each statement stays short (the at_ms index finds them).
 */
export const PRUNE_MAX_ROWS = 4 * PRUNE_EVERY;

export interface GuessBudgetOptions {
  burst: number;
  refillPerSecond: number;
  /** Usernames kept in the local view (least recently touched dropped). Default 65,536. */
  maxUsers?: number;
  now?: () => number;
  log?: Logger;
}

/** The database's clock in ms since the epoch (SQL fragment). */
function nowMs(sql: postgres.Sql): postgres.Fragment {
  return sql`(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;
}

/** A row's tokens refilled to now on the database's clock (SQL fragment). */
function refilled(sql: postgres.Sql, opts: GuessBudgetOptions): postgres.Fragment {
  return sql`LEAST(${opts.burst}::float8, tokens + (${nowMs(sql)} - at_ms) / 1000.0 * ${opts.refillPerSecond}::float8)`;
}

/**
 * A row last touched before this (SQL fragment, ms) has refilled to the burst: tokens ≥ 0 before it.
 * On statement_timestamp(), which is stable within the statement: a comparison with the volatile
 * clock_timestamp() is evaluated per row, so it can only filter an index scan's rows, never bound it
 * (the at_ms index would be read from one end). The statement's start is at most its own duration
 * earlier than the clock, which only makes the cut-off more cautious (a row is pruned a moment later).
 */
function refilledBefore(sql: postgres.Sql, opts: GuessBudgetOptions): postgres.Fragment {
  return sql`(extract(epoch FROM statement_timestamp()) * 1000)::bigint - ${Math.ceil((opts.burst / opts.refillPerSecond) * 1000)}::bigint`;
}

/**
 * The buckets still short of full, the most recently touched first, at most `maxUsers` (what a host
 * that starts reads; exported so the tests can EXPLAIN it): the at_ms index bounds the scan.
 */
export function unrefilledRows(sql: postgres.Sql, opts: GuessBudgetOptions): postgres.PendingQuery<postgres.Row[]> {
  return sql`
    SELECT username, ${refilled(sql, opts)} AS tokens FROM nstp_guesses WHERE at_ms >= ${refilledBefore(sql, opts)}
    ORDER BY at_ms DESC LIMIT ${opts.maxUsers ?? 65_536}`;
}

/**
 * Deletes at most PRUNE_MAX_ROWS refilled rows, the oldest first (exported so the tests can EXPLAIN
 * it). The rows are chosen FOR UPDATE SKIP LOCKED: hosts pruning at once take disjoint batches instead
 * of waiting on (or deadlocking over) each other's row locks, and a row a failure is updating now is
 * left for a later prune. The outer condition is checked again on each row as it is deleted. The batch
 * is a MATERIALIZED CTE, picked once: as an `IN (subquery)` the planner may rescan it, and a rescan
 * skips the rows this statement has already deleted and takes the next ones, so one prune deleted
 * 257 rows in CI's run (session 8).
 */
export function pruneRows(sql: postgres.Sql, opts: GuessBudgetOptions): postgres.PendingQuery<postgres.Row[]> {
  return sql`
    WITH batch AS MATERIALIZED (
      SELECT username FROM nstp_guesses WHERE at_ms < ${refilledBefore(sql, opts)} ORDER BY at_ms LIMIT ${PRUNE_MAX_ROWS}
      FOR UPDATE SKIP LOCKED)
    DELETE FROM nstp_guesses g USING batch WHERE g.username = batch.username AND g.at_ms < ${refilledBefore(sql, opts)}`;
}

export class PostgresGuessBudget {
  private readonly sql: postgres.Sql;
  private readonly opts: GuessBudgetOptions;
  /**
   * The local view: each user's spent tokens as a leaky bucket's level (tokens = burst − level),
   * refilled by leaking, bounded to maxUsers, least recently touched forgotten first.
   */
  private readonly local: LeakyBuckets;
  private unlisten: (() => Promise<void>) | undefined;
  /** Writes to the database not yet answered (bounded: beyond maxUsers they are dropped, the local view still counts). */
  private pending = 0;
  private sincePrune = 0;
  private pruning = false;

  private constructor(sql: postgres.Sql, opts: GuessBudgetOptions) {
    this.sql = sql;
    this.opts = opts;
    this.local = new LeakyBuckets({ leakPerSecond: opts.refillPerSecond, maxLevel: opts.burst, maxKeys: opts.maxUsers ?? 65_536, now: opts.now });
  }

  /** Uses `sql` (the store's connection pool); LISTENs for buckets other hosts emptied. */
  static async open(sql: postgres.Sql, opts: GuessBudgetOptions): Promise<PostgresGuessBudget> {
    const b = new PostgresGuessBudget(sql, opts);
    const sub = await sql.listen(GUESS_CHANNEL, (hex) => void b.refresh(new TextDecoder().decode(fromHex(hex))));
    b.unlisten = sub.unlisten;
    // A host that starts now learns the buckets still short of full (the most recent first, bounded;
    // the at_ms index finds them without reading the refilled rest).
    const rows = await unrefilledRows(sql, opts);
    for (const r of rows.reverse()) if (Number(r.tokens) < opts.burst) b.set(new TextDecoder().decode(r.username as Uint8Array), Number(r.tokens));
    return b;
  }

  /** Whether `username` may be tried now, from the local view. */
  allows(username: string): boolean {
    return this.opts.burst - this.local.level(username) >= 1;
  }

  /** Records one failed authentication of `username`, here at once and in the shared row. */
  failed(username: string): void {
    this.local.add(username, 1);
    if (this.pending >= (this.opts.maxUsers ?? 65_536)) return;
    this.pending++;
    void this.record(username).finally(() => this.pending--);
    if (++this.sincePrune >= PRUNE_EVERY && !this.pruning) {
      this.sincePrune = 0;
      this.pruning = true;
      void this.prune().finally(() => (this.pruning = false));
    }
  }

  /**
   * Deletes at most PRUNE_MAX_ROWS rows whose buckets have refilled, the oldest first (pruneRows);
   * resolves with how many (0 when the database is unreachable: the next prune tries again).
   */
  async prune(): Promise<number> {
    try {
      const done = await pruneRows(this.sql, this.opts);
      return done.count;
    } catch (e) {
      (this.opts.log ?? silentLogger).warn("refilled guessing-budget rows not pruned", { reason: (e as Error).message });
      return 0;
    }
  }

  /** A token bucket step in one statement: refill since at_ms on the database's clock, take one, notify if empty. */
  private async record(username: string): Promise<void> {
    const { burst, refillPerSecond } = this.opts;
    const name = Buffer.from(utf8(username));
    try {
      const [row] = await this.sql`
        WITH t AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms),
        up AS (
          INSERT INTO nstp_guesses AS g (username, tokens, at_ms) SELECT ${name}, ${burst - 1}, now_ms FROM t
          ON CONFLICT (username) DO UPDATE SET
            tokens = GREATEST(0, LEAST(${burst}::float8, g.tokens + (EXCLUDED.at_ms - g.at_ms) / 1000.0 * ${refillPerSecond}::float8) - 1),
            at_ms = EXCLUDED.at_ms
          RETURNING tokens)
        SELECT tokens, CASE WHEN tokens < 1 THEN pg_notify(${GUESS_CHANNEL}, ${toHex(name)}) END AS notified FROM up`;
      if (row) this.set(username, Number(row.tokens));
    } catch (e) {
      (this.opts.log ?? silentLogger).warn("shared guessing budget not recorded; this host's view still applies", { reason: (e as Error).message });
    }
  }

  /** Another host emptied this bucket: take the shared value (refilled to now). */
  private async refresh(username: string): Promise<void> {
    try {
      const [row] = await this.sql`SELECT ${refilled(this.sql, this.opts)} AS tokens FROM nstp_guesses WHERE username = ${Buffer.from(utf8(username))}`;
      if (row) this.set(username, Number(row.tokens));
    } catch {
      // The local view stands until the database answers again.
    }
  }

  /** The shared row's tokens for `username` (refilled to now) replace the local view's. */
  set(username: string, tokens: number): void {
    this.local.set(username, this.opts.burst - tokens);
  }

  async close(): Promise<void> {
    await this.unlisten?.().catch(() => {});
  }
}
