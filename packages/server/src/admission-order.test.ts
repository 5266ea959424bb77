// Admission's eviction order on a fake clock: only a handshake stalled (no step for stallMs) is evicted,
// the one that has gone longest without a step first; a step restarts the clock; a source with recent
// stalls goes before others; at the cap with only progressing handshakes the newcomer is refused; the
// server's own waits (serverWaiting) stop the stall clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type Contender, HandshakeAdmission } from "./admission.ts";

const STALL_MS = 100;
const SILENT_MS = 0;
function table(max: number, clock: { t: number }) {
  return new HandshakeAdmission({ maxHandshaking: max, stallMemorySeconds: 60, maxSources: 16, stallMs: STALL_MS, silentMs: SILENT_MS, now: () => clock.t });
}
const conn = (remoteAddress: string, name = remoteAddress): Contender & { name: string } => ({ remoteAddress, name });

test("at the cap the newcomer is admitted and a stalled handshake (no step once read, or none for stallMs) is evicted, earliest stalled first", () => {
  const clock = { t: 0 };
  const a = table(3, clock);
  const [x, y, z] = [conn("127.0.0.1", "x"), conn("127.0.0.1", "y"), conn("127.0.0.1", "z")];
  for (const c of [x, y, z]) {
    assert.equal(a.admit(c), undefined);
    clock.t += 10;
  }
  a.stepped(x, 1); // x parsed its hello at t=30: its stall clock restarts
  clock.t += STALL_MS; // t=130: all three stalled, x the least
  assert.deepEqual([a.nextTurn(), a.nextTurn()], [[], []], "within the cap: nothing to do");
  const [honest, n1, n2, late] = [conn("127.0.0.1", "honest"), conn("127.0.0.1", "n1"), conn("127.0.0.1", "n2"), conn("127.0.0.1", "late")];
  const admit = (c: Contender) => ((clock.t += 1), a.admit(c));
  assert.equal(admit(honest), y, "y: no step, and the oldest");
  assert.equal(admit(n1), z, "every handshake here shares one address: the stall clock decides");
  assert.equal(admit(n2), x, "x stepped since, but the others are still in the nursery (not yet read)");
  clock.t += 5;
  a.stepped(honest, 2); // its flight was read: preamble and message 1
  assert.equal(admit(late), undefined, "nothing out of the nursery: the table runs over the cap");
  assert.equal(a.size, 4);
  assert.deepEqual(a.nextTurn(), [], "one turn later they may still be unread");
  assert.deepEqual(a.nextTurn(), [n1], "two turns later, read and still without a step: the silent one accepted first goes");
  assert.equal(admit(conn("127.0.0.1")), n2, "silent ones go before the honest one, which stepped since");
  a.left(honest);
  assert.equal(a.size, 2);
});

test("over twice the cap of connections too fresh to judge, the newcomer is refused", () => {
  const clock = { t: 0 };
  const a = table(2, clock);
  const first = Array.from({ length: 4 }, (_, i) => conn("127.0.0.1", `c${i}`));
  for (const c of first) {
    assert.equal(a.admit(c), undefined);
    clock.t += 1;
  }
  const late = conn("127.0.0.1", "late");
  assert.equal(a.admit(late), late);
  assert.equal(a.size, 4);
  a.nextTurn();
  clock.t += STALL_MS;
  assert.deepEqual(a.nextTurn(), [first[0], first[1]], "back to the cap once they had their turn and stalled");
});

test("a handshake that left is never evicted; leaving twice is harmless", () => {
  const clock = { t: 0 };
  const a = table(2, clock);
  const [x, y] = [conn("a"), conn("b")];
  a.admit(x);
  a.admit(y);
  a.nextTurn();
  a.nextTurn();
  a.left(x);
  a.left(x);
  clock.t += STALL_MS;
  assert.equal(a.admit(conn("c")), undefined);
  assert.equal(a.admit(conn("d")), y);
});

test("a source whose handshakes stalled is evicted before a source whose handshakes did not", () => {
  const clock = { t: 0 };
  const a = table(2, clock);
  a.stalled("10.0.0.66");
  const device = conn("10.0.0.7");
  a.admit(device);
  clock.t += 1;
  const attacker = conn("10.0.0.66");
  a.admit(attacker);
  clock.t += 1;
  a.nextTurn();
  a.nextTurn();
  clock.t += STALL_MS;
  assert.equal(a.admit(conn("10.0.0.8")), attacker, "the marked source goes first though it is younger");
  assert.equal(a.markedSources, 1);
  clock.t += 61_000;
  assert.equal(a.admit(conn("10.0.0.66")), device, "stalls fade: the source is unmarked again, and the oldest goes");
});

test("stalls are remembered per IPv6 /64, as the guessing budget counts: a fresh address in the block is still marked", () => {
  const clock = { t: 0 };
  const a = table(2, clock);
  a.stalled("2001:db8:1:2::66");
  const device = conn("2001:db8:ffff::7");
  a.admit(device);
  clock.t += 1;
  const attacker = conn("2001:db8:1:2:abcd::1"); // another address of the same /64
  a.admit(attacker);
  clock.t += 1;
  a.nextTurn();
  a.nextTurn();
  clock.t += STALL_MS;
  assert.equal(a.admit(conn("2001:db8:ffff::8")), attacker, "the /64 with stalls goes first though its address is new");
});

test("at the cap with only progressing handshakes, the newcomer is refused and none of them is evicted", () => {
  const clock = { t: 0 };
  const a = table(3, clock);
  const held = [conn("127.0.0.1", "a"), conn("127.0.0.1", "b"), conn("127.0.0.1", "c")];
  for (const c of held) assert.equal(a.admit(c), undefined);
  a.nextTurn();
  a.nextTurn();
  // Each steps every round trip, well within stallMs (a reconnect storm of honest devices).
  for (let i = 1; i <= 3; i++) {
    clock.t += STALL_MS / 2;
    for (const c of held) a.stepped(c, i);
    const late = conn("127.0.0.1", `late${i}`);
    assert.equal(a.admit(late), late, "the newcomer is refused busy");
    assert.equal(a.size, 3);
    assert.deepEqual(a.nextTurn(), []);
  }
  assert.equal(a.evictions, 0, "no progressing handshake was evicted");
  assert.equal(a.busyRefusals, 3);
  assert.equal(a.markedSources, 0, "a refusal at the cap is not a stall of the source");
  // One falls silent: past stallMs it is evicted for the next newcomer.
  a.stepped(held[0]!, 4);
  a.stepped(held[2]!, 4);
  clock.t += STALL_MS / 2;
  a.stepped(held[0]!, 5);
  a.stepped(held[2]!, 5);
  clock.t += STALL_MS / 2;
  assert.equal(a.admit(conn("127.0.0.1", "next")), held[1], "b has gone stallMs without a step");
});

test("a young handshake of a marked source does not shield an unmarked source's stalled one", () => {
  const clock = { t: 0 };
  const a = table(2, clock);
  const device = conn("10.0.0.7");
  a.admit(device);
  a.stepped(device, 1);
  clock.t += STALL_MS;
  a.stalled("10.0.0.66");
  const attacker = conn("10.0.0.66");
  a.admit(attacker);
  a.stepped(attacker, 1);
  a.nextTurn();
  a.nextTurn();
  assert.equal(a.admit(conn("10.0.0.8")), device, "the marked source is first in order but progressing; the stalled device goes");
});

test("over the cap from the nursery with only progressing handshakes: none evicted, no turns asked for until one stalls", () => {
  const clock = { t: 0 };
  const a = table(2, clock);
  const [x, y, z] = [conn("127.0.0.1", "x"), conn("127.0.0.1", "y"), conn("127.0.0.1", "z")];
  for (const c of [x, y, z]) assert.equal(a.admit(c), undefined, "all in the nursery: the table runs over the cap");
  for (const c of [x, y, z]) {
    clock.t += 1;
    a.stepped(c, 1);
  }
  a.nextTurn();
  assert.deepEqual(a.nextTurn(), [], "read and progressing: kept over the cap");
  assert.equal(a.size, 3);
  assert.equal(a.wantsTurns, false, "no busy loop of turns while none is stalled");
  clock.t += STALL_MS - 1;
  assert.equal(a.wantsTurns, true, "x has now gone stallMs without a step");
  assert.deepEqual(a.nextTurn(), [x], "back to the cap");
});

test("the server's own waits stop the stall clock: a handshake whose key the server is looking up is not stalled, and its clock runs on from where it stopped", () => {
  const clock = { t: 0 };
  const a = table(2, clock);
  const [x, y] = [conn("127.0.0.1", "x"), conn("127.0.0.1", "y")];
  a.admit(x);
  a.admit(y);
  a.nextTurn();
  a.nextTurn();
  a.stepped(x, 1);
  a.stepped(y, 1);
  clock.t += STALL_MS / 4; // a quarter of the threshold waiting for the client
  a.stepped(y, 2);
  a.serverWaiting(x, true); // x's key lookup begins
  clock.t += STALL_MS / 4;
  a.serverWaiting(x, true); // a second wait begun while one runs changes nothing
  clock.t += 10 * STALL_MS; // the lookup takes ten thresholds: y, waiting for its client, is stalled
  assert.equal(a.admit(conn("127.0.0.1", "n1")), y, "the one waiting for its client goes");
  const n2 = conn("127.0.0.1", "n2");
  assert.equal(a.admit(n2), n2, "x waits on the server: not stalled, the newcomer refused");
  a.serverWaiting(x, false);
  clock.t += (3 * STALL_MS) / 4 - 1;
  const n3 = conn("127.0.0.1", "n3");
  assert.equal(a.admit(n3), n3, "x has 1 ms of its clock left");
  clock.t += 1;
  assert.equal(a.admit(conn("127.0.0.1", "n4")), x, "stalled once its client's time made up the threshold");
  a.serverWaiting(x, false); // gone: harmless

  // A step while the server keeps it waiting restarts the clock, still stopped until the wait ends.
  const b = table(1, clock);
  const z = conn("127.0.0.1", "z");
  b.admit(z);
  b.nextTurn();
  b.nextTurn();
  b.stepped(z, 1);
  b.serverWaiting(z, true);
  clock.t += STALL_MS / 2;
  b.stepped(z, 2);
  clock.t += 5 * STALL_MS;
  const m = conn("127.0.0.1", "m");
  assert.equal(b.admit(m), m, "stopped");
  b.serverWaiting(z, false);
  clock.t += STALL_MS - 1;
  assert.equal(b.admit(m), m, "a full threshold from the end of the wait");
  clock.t += 1;
  assert.equal(b.admit(conn("127.0.0.1", "m2")), z);
});

test("at most a quarter of the cap have their stall clock stopped for the server's waits: beyond that a waiting handshake stalls as usual", () => {
  // A stranger can make the server wait for free (names whose lookups queue at a slow store): were
  // every waiting handshake's clock stopped, such waits would pin every slot (the review of session 5).
  const clock = { t: 0 };
  const a = table(4, clock); // a quarter of 4: one stopped clock at a time
  const [w1, w2, w3, w4] = ["w1", "w2", "w3", "w4"].map((n) => conn(`10.0.0.${n.slice(1)}`, n));
  for (const c of [w1!, w2!, w3!, w4!]) a.admit(c);
  a.nextTurn();
  a.nextTurn();
  for (const c of [w1!, w2!, w3!, w4!]) a.stepped(c, 1);
  a.serverWaiting(w1!, true);
  a.serverWaiting(w2!, true); // over the bound: its clock runs on
  assert.equal(a.serverWaitingCount, 1);
  clock.t += 10 * STALL_MS;
  const evicted = [a.admit(conn("10.1.0.1", "n1")), a.admit(conn("10.1.0.2", "n2")), a.admit(conn("10.1.0.3", "n3"))];
  assert.deepEqual(new Set(evicted.map((c) => (c as unknown as { name: string }).name)), new Set(["w2", "w3", "w4"]), "w2 stalled like the ones waiting for their clients");
  const n4 = conn("10.1.0.4", "n4");
  assert.equal(a.admit(n4), n4, "w1, stopped, is not stalled: the newcomer is refused");
  // Its place frees when it leaves, for the next wait.
  a.left(w1!);
  assert.equal(a.serverWaitingCount, 0);
});

test("a handshake evicted while the server keeps it waiting (its clock running past the bound, or the judge delay) does not mark its source", () => {
  const clock = { t: 0 };
  const a = table(4, clock); // one stopped clock at a time
  const [w1, w2, w3, w4] = ["1", "2", "3", "4"].map((n) => conn(`10.0.0.${n}`, `w${n}`));
  for (const c of [w1!, w2!, w3!, w4!]) a.admit(c);
  a.nextTurn();
  a.nextTurn();
  for (const c of [w1!, w2!, w3!, w4!]) a.stepped(c, 1);
  a.serverWaiting(w1!, true); // stopped
  a.serverWaiting(w2!, true); // over the bound: waits on the server, clock running
  a.serverWaiting(w3!, true, false); // the judge delay: clock running
  clock.t += 10 * STALL_MS;
  const evicted = [a.admit(conn("10.1.0.1", "n1")), a.admit(conn("10.1.0.2", "n2")), a.admit(conn("10.1.0.3", "n3"))];
  assert.deepEqual(new Set(evicted.map((c) => (c as unknown as { name: string }).name)), new Set(["w2", "w3", "w4"]));
  assert.equal(a.markedSources, 1, "only w4's source, which kept the server waiting for its client, is marked");
});
