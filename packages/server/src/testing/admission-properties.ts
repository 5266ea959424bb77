/**
 * Fuzzing properties of the admission table (admission.ts), beside the protocol ones in
 * packages/core/src/testing/fuzz-properties.ts and run with them by scripts/fuzz.ts: random
 * sequences of arrivals from a few sources, handshake steps, exits, stalls, clock moves and
 * event-loop turns, and the server's own waits, checked after every operation against a model written
 * from the rule itself (the handshake of a marked source before any other, then the one stalled
 * earliest; only a stalled one (no step silentMs after accept, or none for stallMs, not counting the
 * time the server kept it waiting), else the newcomer is refused; never one accepted less than two
 * turns ago; over the cap until the next turn, up to twice the cap, then refusal).
 */
import { type FuzzProperty, fc } from "@nstp/testkit";
import { type Contender, HandshakeAdmission } from "../admission.ts";
import { GuessBudget } from "../budget.ts";

type Op =
  | { kind: "admit"; source: number }
  | { kind: "step" | "leave"; pick: number }
  | { kind: "wait"; pick: number; on: boolean }
  | { kind: "stall"; source: number }
  | { kind: "tick"; ms: number }
  | { kind: "turn" };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("admit" as const), source: fc.nat(3) }),
  fc.record({ kind: fc.constantFrom("step" as const, "leave" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("wait" as const), pick: fc.nat(), on: fc.boolean() }),
  fc.record({ kind: fc.constant("stall" as const), source: fc.nat(3) }),
  fc.record({ kind: fc.constant("tick" as const), ms: fc.nat(3000) }),
  fc.record({ kind: fc.constant("turn" as const) }),
);

const STALL_MEMORY_S = 5;
// Half a millisecond off the integer clock: a stepped handshake's stall time never ties with an accept.
const STALL_MS = 500.5;
const SILENT_MS = 100.25;

function admissionMatchesModel(max: number, ops: Op[]): void {
  let now = 0;
  const table = new HandshakeAdmission({ maxHandshaking: max, stallMemorySeconds: STALL_MEMORY_S, maxSources: 64, stallMs: STALL_MS, silentMs: SILENT_MS, now: () => now });
  // The model: live handshakes with their stall clock, and each source's stall level (leaks 1/s).
  const live = new Map<Contender, number>();
  const steps = new Map<Contender, number>();
  const acceptedIn = new Map<Contender, number>();
  // The server's own waits: since when one runs, and the time excused by finished ones since the last step.
  const waitingSince = new Map<Contender, number>();
  const excused = new Map<Contender, number>();
  let turn = 0;
  const level = new Map<string, { v: number; at: number }>();
  const levelOf = (s: string) => {
    const l = level.get(s);
    return l ? Math.max(0, l.v - (now - l.at) / 1000) : 0;
  };
  const stall = (s: string) => level.set(s, { v: Math.min(STALL_MEMORY_S, levelOf(s) + 1), at: now });
  // Steps restart the stall clock but buy no rank of their own (docs/PROTOCOL.md says why).
  // Marked while the level is above limiter.ts's EPSILON (a level that small is drained).
  // silentMs after accept if it never stepped (judged only once out of the nursery), else stallMs after its last step,
  // not counting the time the server kept it waiting (never, while it does).
  const stallsAt = (c: Contender) =>
    waitingSince.has(c) ? Number.POSITIVE_INFINITY : live.get(c)! + (steps.get(c)! === 0 ? SILENT_MS : STALL_MS) + (excused.get(c) ?? 0);
  const rank = (c: Contender) => [levelOf(c.remoteAddress) > 1e-9 ? 0 : 1, stallsAt(c)];
  // The time excused can make two stall clocks tie; then either may go, and the model follows the table.
  const tied = (x: Contender, y: Contender) => rank(x)[0] === rank(y)[0] && rank(x)[1] === rank(y)[1];
  const before = (x: number[], y: number[]) => (x[0]! !== y[0]! ? x[0]! < y[0]! : x[1]! < y[1]!);
  const ripe = (c: Contender) => acceptedIn.get(c)! <= turn - 2;
  /** The next to evict: out of the nursery (accepted two turns ago or more), least rank. */
  const stalledLong = (c: Contender) => now >= stallsAt(c);
  const judgeable = () => [...live.keys()].some(ripe);
  const due = () =>
    [...live.keys()].filter((c) => ripe(c) && stalledLong(c)).reduce<Contender | undefined>((a, b) => (!a || before(rank(b), rank(a)) ? b : a), undefined);
  // Handshakes the server keeps waiting (clock stopped or not): evicted, they do not mark their source.
  const onServer = new Set<Contender>();
  const evicted = (c: Contender) => {
    live.delete(c);
    if (!onServer.has(c)) stall(c.remoteAddress);
  };
  const fail = (msg: string) => {
    throw new Error(`${msg} (max ${max}, t=${now})`);
  };
  for (const op of ops) {
    const conns = [...live.keys()];
    now += 1; // every operation at its own instant: no two stall clocks tie
    if (op.kind === "admit") {
      const c: Contender = { remoteAddress: `10.0.0.${op.source}` };
      const best = due();
      if (live.size >= max && judgeable() && !best) {
        // At the cap with every judgeable handshake progressing: the newcomer is refused, nothing evicted.
        if (table.admit(c) !== c) fail("a newcomer admitted at the cap with no handshake stalled");
      } else {
        live.set(c, now);
        steps.set(c, 0);
        acceptedIn.set(c, turn);
        const victim = table.admit(c);
        if (live.size <= max) {
          if (victim) fail("evicted below the cap");
        } else if (best) {
          if (victim !== best && !(victim && live.has(victim) && victim !== c && tied(victim, best))) fail(`evicted ${victim ? rank(victim) : "nothing"} where ${rank(best)} was due`);
          evicted(victim as Contender);
        } else if (live.size <= 2 * max) {
          if (victim) fail("evicted a connection accepted less than two turns ago");
        } else {
          if (victim !== c) fail("over twice the cap and the newcomer not refused");
          evicted(c);
        }
      }
    } else if (op.kind === "turn") {
      turn++;
      const victims = table.nextTurn();
      const expected: Contender[] = [];
      while (live.size > max && due()) {
        let v = due()!;
        const got = victims[expected.length];
        if (got && got !== v && live.has(got) && ripe(got) && stalledLong(got) && tied(got, v)) v = got;
        expected.push(v);
        evicted(v);
      }
      if (victims.length !== expected.length || victims.some((v, i) => v !== expected[i])) fail(`turn evicted ${victims.length}, model ${expected.length}`);
    } else if (op.kind === "step" && conns.length) {
      const c = conns[op.pick % conns.length]!;
      live.set(c, now);
      excused.set(c, 0);
      if (waitingSince.has(c)) waitingSince.set(c, now);
      steps.set(c, Math.min(3, steps.get(c)! + 1));
      table.stepped(c, steps.get(c)!);
    } else if (op.kind === "wait" && conns.length) {
      const c = conns[op.pick % conns.length]!;
      // At most a quarter of the cap (admission.ts maxServerWaiting's default) have their clock stopped.
      const stopped = [...waitingSince.keys()].filter((x) => live.has(x)).length;
      if (op.on && !onServer.has(c) && stopped < Math.max(1, Math.floor(max / 4))) waitingSince.set(c, now);
      if (op.on) onServer.add(c);
      else onServer.delete(c);
      if (!op.on && waitingSince.has(c)) {
        excused.set(c, (excused.get(c) ?? 0) + now - waitingSince.get(c)!);
        waitingSince.delete(c);
      }
      table.serverWaiting(c, op.on);
    } else if (op.kind === "leave" && conns.length) {
      const c = conns[op.pick % conns.length]!;
      live.delete(c);
      table.left(c);
      table.left(c);
    } else if (op.kind === "stall") {
      stall(`10.0.0.${op.source}`);
      table.stalled(`10.0.0.${op.source}`);
    } else if (op.kind === "tick") {
      now += op.ms;
    }
    if (table.size !== live.size) fail(`table holds ${table.size}, model ${live.size}`);
    if (table.size > 2 * max) fail("over twice the cap");
  }
}

type BudgetOp = { source: number; user: number; outcome: "ok" | "bad" | "gone"; ms: number };

/** However guesses interleave, no address has more judged and unrefunded in a window than its bucket allows. */
function budgetHolds(ops: BudgetOp[]): void {
  let now = 0;
  const burst = 5;
  const b = new GuessBudget({
    address: { burst, refillPerSecond: 1, maxSources: 16 },
    user: { burst, refillPerSecond: 1, maxUsers: 16, maxWaitMs: 2000, trustSeconds: 10 },
    now: () => now,
  });
  const spent = new Map<number, number[]>(); // per address: times of unrefunded judgements
  for (const op of ops) {
    now += op.ms;
    const v = b.reserve(`a${op.source}`, `u${op.user}`);
    if (v.kind !== "judge") continue;
    if (v.delayMs < 0 || v.delayMs > 2000) throw new Error(`wait of ${v.delayMs} ms`);
    if (op.outcome === "ok") b.settle(v.ticket, true);
    else if (op.outcome === "gone") b.cancel(v.ticket);
    else {
      b.settle(v.ticket, false);
      const xs = spent.get(op.source) ?? [];
      xs.push(now);
      spent.set(op.source, xs);
      // Leaky bucket: over any window of w seconds ending now, at most burst + w failures.
      for (let i = 0; i < xs.length; i++) {
        const w = (now - xs[i]!) / 1000;
        if (xs.length - i > burst + w + 1e-9) throw new Error(`${xs.length - i} failures from a${op.source} in ${w} s`);
      }
    }
  }
}

const arbBudgetOp: fc.Arbitrary<BudgetOp> = fc.record({
  // Mostly failures, mostly at once: the bursts a budget must hold against.
  source: fc.nat(1),
  user: fc.nat(2),
  outcome: fc.oneof({ weight: 4, arbitrary: fc.constant("bad" as const) }, fc.constant("ok" as const), fc.constant("gone" as const)),
  ms: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, fc.nat(1500)),
});

export const ADMISSION_PROPERTIES: FuzzProperty[] = [
  {
    name: "admission: eviction follows the rule (only stalled handshakes: marked source first, then stalled earliest; else the newcomer refused) and holds the cap",
    property: fc.property(fc.integer({ min: 0, max: 6 }), fc.array(arbOp, { maxLength: 80, size: "max" }), admissionMatchesModel) as unknown as fc.IProperty<never>,
  },
  {
    name: "guessing budget: failures per address stay within burst + refill over any window",
    property: fc.property(fc.array(arbBudgetOp, { maxLength: 80, size: "max" }), budgetHolds) as unknown as fc.IProperty<never>,
  },
];
