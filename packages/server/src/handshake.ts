/**
 * The server's side of one connection's handshake, beside its driver (connection.ts): the key
 * lookup the machine asks for, admission's view of each step (admission.ts), the guessing budget's
 * reservation before a password is judged and its backoff delay (budget.ts), and v3's curve step.
 * The driver owns the wire and the machine's outputs; this owns what the handshake holds until the
 * session is established or the connection ends.
 */
import { AuthError, type Credential, Deadline, type NstpError, type Output, type ServerMachine, toNstpError, type v3 } from "@nstp/core";
import { CurveRefusal, runCurveJob } from "@nstp/core/pool";
import type { Contender } from "./admission.ts";
import type { Ticket } from "./budget.ts";
import type { ConnectionContext } from "./connection-context.ts";
import type { CurvePlace } from "./curve-cap.ts";
import type { LookupPlace } from "./lookup-gate.ts";
import { type KeyAnswer, type KeyStore, asCredential, sourceAtLookupCap } from "./credentials.ts";
import { isThenable } from "./thenable.ts";

/** What the handshake needs of its connection. */
export interface HandshakeHost extends Contender {
  /** The connection has ended: late answers are dropped. */
  readonly done: boolean;
  fail(e: unknown): void;
  /** Applies the machine's outputs (the driver's switch). */
  apply(outputs: Output[]): void;
  /** Applies outputs as for received bytes, then lets the replies they made leave; false if it failed. */
  received(outputs: () => Output[]): boolean;
  /** The handshake deadline passed: refuse (busy) or close, as the connection decides. */
  deadlinePassed(): void;
  /** Ends the handshake for the server's own reason: the busy signal if its answer is not sent yet. */
  refuse(err: NstpError): void;
}

export class ServerHandshake {
  private readonly machine: ServerMachine;
  private readonly ctx: ConnectionContext;
  private readonly host: HandshakeHost;
  /** The username the client claimed, from the moment its key was asked for. */
  claimedUser: string | undefined;
  /**
   * Aborts the key derivation and curve work this connection waits for, when it goes away. Made at
   * the lookup and dropped once established: an AbortController and its signal are a good share of
   * an idle session's memory (the fleet bench).
   */
  private abort: AbortController | undefined;
  /** The handshake step last reported to admission. */
  private step = 0;
  /** The user's credential, held until the guess is here and the guessing budget lets it be judged. */
  private key: { username: string; credential: Credential | undefined } | undefined;
  private ticket: Ticket | undefined;
  /** The source whose place (curve-cap.ts) this connection's curve step holds while it is in flight. */
  private curveSource: CurvePlace | undefined;
  /** Waits out the user's backoff before judging (budget.ts); armed only while it does. */
  private readonly judgeDelay = new Deadline();
  /**
   * From accept to an authenticated session (ConnectionLimits.handshakeTimeoutMs), less the time the
   * server kept the peer waiting on its own work, up to as long again (see overdue()).
   */
  private readonly deadline = new Deadline();
  private readonly acceptedAt = performance.now();
  /**
   * The server's own waits in progress (its key lookup, the judge delay, the curve step); the time
   * spent in finished ones, and since when the current ones run. Admission's stall clock stops for
   * the lookup and the curve step (waitBegins).
   */
  private serverWaits = 0;
  private serverWaitedMs = 0;
  private serverSince = 0;
  /** Established or ended: nothing more is reported or judged. */
  private over = false;

  constructor(machine: ServerMachine, ctx: ConnectionContext, host: HandshakeHost) {
    this.machine = machine;
    this.ctx = ctx;
    this.host = host;
    this.deadline.arm(ctx.limits.handshakeTimeoutMs, () => this.overdue());
  }

  /**
   * The handshake deadline bounds the peer's time, not ours: the time the server kept the peer waiting
   * on its own work (the key lookup, the guessing budget's judge delay, v3's curve step) does not
   * count. The curve step's wait is the pool's queue (bounded: CryptoPool.maxQueue, beyond which the
   * step is refused busy), and under load it was most of the deadline: in the v3 soak against the Node
   * server at load 10-16 (2026-11-27), the 100th message 2 left 9.9 s after accept, and clients that
   * answered within milliseconds of reading it were closed at 10 s, some after they had sent message 3
   * and counted themselves established. A store's lookup under a reconnect storm is the same kind of
   * wait. The peer's own silence still counts in full. The time excluded is capped at the deadline
   * itself, so a handshake holds its place (admission's cap, its connection) for at most twice the
   * deadline: the pool's queue alone bounds it only at maxQueue × task time ÷ threads (19 s on the
   * 2-core review machine, 2026-11-27, past a 10 s deadline). Returns how long until the next look, or
   * tells the connection the deadline passed (undefined).
   */
  private overdue(): number | undefined {
    const now = performance.now();
    const timeout = this.ctx.limits.handshakeTimeoutMs;
    const ours = Math.min(timeout, this.serverWaitedMs + (this.serverWaits > 0 ? now - this.serverSince : 0));
    const left = this.acceptedAt + timeout + ours - now;
    if (left >= 1) return left;
    this.host.deadlinePassed();
    return undefined;
  }

  /**
   * The server starts keeping the peer waiting on its own work: the deadline does not count it
   * (overdue()), and, for the server's load (`load`: the key lookup, the curve step), neither does
   * admission's stall clock, within admission's bound on such handshakes (admission.ts
   * serverWaiting). The judge delay is not load but a penalty on guesses at that user: a handshake
   * waiting it out stays evictable as stalled, or a guesser holding one name over its budget could
   * pin a slot per wrong guess for the whole delay (the review of session 5).
   */
  private waitBegins(load: boolean): void {
    if (this.serverWaits++ > 0) return;
    this.serverSince = performance.now();
    this.ctx.admission.serverWaiting(this.host, true, load);
  }

  private waitEnds(): void {
    if (this.serverWaits === 0 || --this.serverWaits > 0) return;
    this.serverWaitedMs += performance.now() - this.serverSince;
    this.ctx.admission.serverWaiting(this.host, false);
  }

  /** A guess has been reserved: something that depends on the password may have been sent. */
  get guessReserved(): boolean {
    return this.ticket !== undefined;
  }

  /**
   * The machine's "need-key": looks the user up (synchronously or not), then moves on. A source not
   * proven takes a place at the lookup gate first, for every name, cached or not, and is refused busy
   * at its cap before the store is asked (lookup-gate.ts): what the gate counts, and so whether a
   * source is refused, does not depend on the store's cache. The place is settled once on every path
   * (an answer, a failure, a synchronous throw) and outlives the connection: it goes back when the
   * store's work for it is over and the store's hold has passed (LookupPlace).
   */
  lookup(username: string): void {
    this.claimedUser = username;
    let lookup: ReturnType<KeyStore["lookup"]>;
    let place: LookupPlace | undefined;
    try {
      // A synchronous ERR_BUSY lands here before anything was sent: the reference client sees a close
      // before the session nonce, a v2 client the busy signal in place of message 2.
      const keys = this.ctx.keys;
      const gate = this.ctx.lookupGate;
      place = gate?.enter(this.host.remoteAddress, keys.lookupHoldMs);
      if (gate && !place) throw sourceAtLookupCap();
      this.abort = new AbortController();
      const admit = place?.admit;
      lookup = keys.lookupCredential ? keys.lookupCredential(username, this.abort.signal, admit) : keys.lookup(username, this.abort.signal, admit);
    } catch (e) {
      place?.settled();
      this.lookupFailed(toNstpError(e, "ERR_AUTH", "key lookup failed"));
      return;
    }
    if (isThenable(lookup)) {
      this.waitBegins(true);
      lookup.then(
        (answer) => {
          place?.settled();
          this.waitEnds();
          this.keyResolved(username, answer);
        },
        (e: unknown) => {
          place?.settled();
          this.waitEnds();
          this.lookupFailed(toNstpError(e, "ERR_AUTH", "key lookup failed"));
        },
      );
    } else {
      place?.settled();
      this.keyResolved(username, lookup);
    }
  }

  /**
   * A lookup that failed for the server's own reason (its store unavailable or too slow: ERR_BUSY,
   * ERR_TIMEOUT) refuses with the busy signal, as a synchronous ERR_BUSY does: nothing of the guess has
   * been judged, and a bare close after message 1 reads to a client as a wrong password (ERR_AUTH,
   * never retried). Any other failure closes like an authentication failure.
   */
  private lookupFailed(err: NstpError): void {
    if (err.code === "ERR_BUSY" || err.code === "ERR_TIMEOUT") this.host.refuse(err);
    else this.host.fail(err);
  }

  private keyResolved(username: string, answer: KeyAnswer): void {
    if (this.host.done || this.over) return;
    // An unknown user (undefined) proceeds with the machine's fake of the same kind and fails at the
    // proof, exactly like a wrong password (machine.ts, CredentialFakes).
    this.key = { username, credential: asCredential(answer) };
    try {
      this.moved();
    } catch (e) {
      this.host.fail(e);
    }
  }

  /**
   * After input or a key: tells admission of a new handshake step, and once the proof (legacy) or
   * message 1 (v2) is here with the key, reserves a guess from the budget before judging it: at once,
   * after the user's backoff, or not at all (over budget: the same failure as a wrong password).
   */
  moved(): void {
    if (this.over) return;
    const step = this.machine.handshakeStep;
    if (step !== this.step) {
      this.step = step;
      this.ctx.admission.stepped(this.host, step);
    }
    if (!this.key || this.ticket || !this.machine.judgeable) return;
    const verdict = this.ctx.budget.reserve(this.host.remoteAddress, this.key.username);
    if (verdict.kind === "over") throw new AuthError("over the guessing budget", { cause: verdict.scope });
    this.ticket = verdict.ticket;
    if (verdict.delayMs <= 0) this.judge();
    else {
      this.waitBegins(false);
      this.judgeDelay.once(verdict.delayMs, () => {
        this.waitEnds();
        this.host.received(() => (this.judge(), []));
      });
    }
  }

  /**
   * v3's curve step, inline on an idle loop or in the pool on a busy one (runCurveJob decides, as
   * crypto/placement.ts measured); message 2 follows. Its guess was charged before (judge()). When
   * the pool's queue is full, or this connection's source already has its share of curve steps in
   * flight (curve-cap.ts), the step is not run and the handshake is refused with the busy signal;
   * its guess is refunded, since no curve work was done for it and nothing that depends on the
   * password was sent. Both refusals take the same path, so neither tells the peer anything the
   * other does not. The source's place is given back when the step comes back, or when the
   * connection ends first (ended(): the pool unlinks a waiting job whose caller went away, so it
   * no longer holds the queue; a running one ends on its thread, which the cap does not guard).
   */
  curve(job: v3.VerifierCurveInput): void {
    const cap = this.ctx.curveCap;
    const source = cap?.take(this.host.remoteAddress);
    this.curveSource = source;
    this.waitBegins(true);
    const step =
      cap && source === undefined
        ? Promise.resolve(new CurveRefusal(undefined, "this source's (or the unproven sources') curve steps in flight at their cap"))
        : runCurveJob(job, this.ctx.curvePool, { signal: this.abort?.signal });
    void step.then((result) => {
      this.waitEnds();
      this.releaseCurve();
      if (this.host.done) return;
      if (result instanceof CurveRefusal) {
        if (this.ticket) this.ctx.budget.cancel(this.ticket);
        this.ticket = undefined;
        this.host.refuse(result);
      } else {
        this.host.received(() => this.machine.provideCurve!(result));
      }
    });
  }

  /** Gives the source's place for the curve step back, once (curve-cap.ts). */
  private releaseCurve(): void {
    if (this.curveSource === undefined) return;
    this.ctx.curveCap?.release(this.curveSource);
    this.curveSource = undefined;
  }

  /** Provides the key: the machine judges the proof now. */
  private judge(): void {
    const { credential } = this.key!;
    this.key = undefined;
    // A wrong password throws here or later (fail() then keeps the guess spent). Once the machine says
    // the password is right, the guess is refunded: for v2 at message 1, even a replayed one, which
    // guesses nothing; for a protocol that learns it later (v3: message 3), when the session is.
    this.host.apply(this.machine.provideCredential(credential));
    if (this.ticket && this.machine.passwordVerified) this.ctx.budget.settle(this.ticket, true);
  }

  /**
   * The peer proved its key: its guess is refunded (if not already), its address skips the user's
   * backoff from now on, and it leaves the handshake cap.
   */
  established(username: string): void {
    this.over = true;
    this.deadline.cancel();
    this.abort = undefined;
    if (this.ticket) this.ctx.budget.settle(this.ticket, true);
    this.ctx.budget.sessionStarted(username, this.host.remoteAddress);
    // The name's cached record, and the source's lookups, out of a stranger's flood's reach (lookup-gate.ts).
    this.ctx.keys.confirmed?.(username);
    // Proven while the session lives, and for a day after (proven-sources.ts): connection.ts finish() tells its end.
    this.ctx.lookupGate?.proven.sessionStarted(this.host.remoteAddress);
    this.ctx.admission.left(this.host);
  }

  /** The connection ended before establishment (or after: then only the waits are stopped). */
  ended(established: boolean): void {
    this.over = true;
    this.abort?.abort();
    this.releaseCurve();
    if (!established) {
      this.ctx.admission.left(this.host);
      // Closed while waiting for its judgement: nothing was judged, nothing is charged. Judged and
      // not settled (a wrong password): the guess stays spent.
      if (this.ticket && this.judgeDelay.armed) this.ctx.budget.cancel(this.ticket);
      else if (this.ticket) this.ctx.budget.settle(this.ticket, false);
    }
    this.judgeDelay.cancel();
    this.deadline.cancel();
  }
}
