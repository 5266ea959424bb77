/**
 * The admission and guessing-budget figures as Prometheus series (rendered by metrics.ts). Totals
 * and table sizes only: no address or username ever becomes a label.
 */
import type { HandshakeAdmission } from "./admission.ts";
import type { GuessBudget } from "./budget.ts";
import type { CurveStepCap } from "./curve-cap.ts";
import type { LookupGate } from "./lookup-gate.ts";
import type { UnfinishedBudget } from "./unfinished-budget.ts";

export interface DefenceSources {
  admission: HandshakeAdmission;
  budget: GuessBudget;
  /** With a pool only (curve-cap.ts). */
  curveCap?: CurveStepCap;
  lookupGate?: LookupGate;
  /** The memory unfinished messages hold (unfinished-budget.ts). */
  unfinished?: UnfinishedBudget;
}

export interface Series {
  name: string;
  type: "gauge" | "counter";
  help: string;
  samples: [number, Record<string, string>?][];
}

export function defenceSeries({ admission: a, budget: b, curveCap, lookupGate, unfinished }: DefenceSources): Series[] {
  const c = b.counts;
  const capped: Series[] = curveCap
    ? [
        { name: "nstp_curve_steps_over_source_cap_total", type: "counter", help: "v3 curve steps refused busy: their source had its share of the pool's queue in flight.", samples: [[curveCap.refused]] },
        { name: "nstp_curve_steps_over_unproven_cap_total", type: "counter", help: "v3 curve steps refused busy: the sources no peer proved its key from lately had their half of the pool's queue in flight.", samples: [[curveCap.refusedUnproven]] },
      ]
    : [];
  const gated: Series[] = lookupGate
    ? [
        { name: "nstp_key_lookups_over_source_cap_total", type: "counter", help: "Handshakes refused busy: their source (not proven) had its share of key lookups under way.", samples: [[lookupGate.refused]] },
        { name: "nstp_key_lookups_over_unproven_cap_total", type: "counter", help: "Handshakes refused busy: the sources no peer proved its key from lately had their half of the store's lookups under way.", samples: [[lookupGate.refusedUnproven]] },
      ]
    : [];
  return [
    { name: "nstp_handshake_evictions_total", type: "counter", help: "Handshakes closed to admit a newcomer at the cap (stalled longest).", samples: [[a.evictions]] },
    { name: "nstp_handshake_stalls_total", type: "counter", help: "Handshakes that stalled: timed out or evicted.", samples: [[a.stallsRecorded]] },
    { name: "nstp_stalling_sources", type: "gauge", help: "Source addresses with stalls remembered (their handshakes are evicted first).", samples: [[a.markedSources]] },
    { name: "nstp_guesses_judged_total", type: "counter", help: "Passwords judged (a guess reserved from both budgets, not cancelled).", samples: [[c.reserved - c.cancelled]] },
    { name: "nstp_guesses_refunded_total", type: "counter", help: "Guesses refunded because the peer proved its key.", samples: [[c.refunded]] },
    { name: "nstp_guesses_delayed_total", type: "counter", help: "Judgements delayed by the per-user backoff.", samples: [[c.waited]] },
    { name: "nstp_guesses_over_budget_total", type: "counter", help: "Judgements refused (failed like a wrong password), by budget.", samples: [[c.overAddress, { scope: "address" }], [c.overUser, { scope: "user" }]] },
    { name: "nstp_guess_budget_entries", type: "gauge", help: "Entries in the guessing-budget tables, by scope.", samples: [[b.trackedSources, { scope: "address" }], [b.trackedUsers, { scope: "user" }]] },
    ...capped,
    ...gated,
    ...(unfinished
      ? [{ name: "nstp_unfinished_message_bytes", type: "gauge", help: "Bytes held by v2 and v3 messages in progress, over every session (ended beyond --max-unfinished-bytes).", samples: [[unfinished.bytes]] } satisfies Series]
      : []),
  ];
}
