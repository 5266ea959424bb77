// Admission's eviction order on a fake clock: the handshake that has gone longest without a step goes
// first; a step restarts the clock; a source with recent stalls goes before others; tables bounded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type Contender, HandshakeAdmission } from "./admission.ts";

function table(max: number, clock: { t: number }) {
  return new HandshakeAdmission({ maxHandshaking: max, stallMemorySeconds: 60, maxSources: 16, now: () => clock.t });
}
const conn = (remoteAddress: string, name = remoteAddress): Contender & { name: string } => ({ remoteAddress, name });

test("at the cap the newcomer is admitted and the handshake stalled longest is evicted", () => {
  const clock = { t: 0 };
  const a = table(3, clock);
  const [x, y, z] = [conn("127.0.0.1", "x"), conn("127.0.0.1", "y"), conn("127.0.0.1", "z")];
  for (const c of [x, y, z]) {
    assert.equal(a.admit(c), undefined);
    clock.t += 10;
  }
  a.stepped(x); // x took a step at t=30: now the youngest
  clock.t += 10;
  const honest = conn("127.0.0.1", "honest");
  assert.equal(a.admit(honest), y, "y has gone longest without a step");
  const next = () => ((clock.t += 1), a.admit(conn("127.0.0.1")));
  assert.equal(next(), z, "every handshake here shares one address: the stall clock alone decides");
  assert.equal(next(), x);
  assert.equal(next(), honest, "at last the honest one, now the oldest stalled");
  assert.equal(a.evictions, 4);
  assert.equal(a.size, 3);
});

test("a handshake that left is never evicted; leaving twice is harmless", () => {
  const clock = { t: 0 };
  const a = table(2, clock);
  const [x, y] = [conn("a"), conn("b")];
  a.admit(x);
  a.admit(y);
  a.left(x);
  a.left(x);
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
  assert.equal(a.admit(conn("10.0.0.8")), attacker, "the marked source goes first though it is younger");
  assert.equal(a.markedSources, 1);
  clock.t += 61_000;
  assert.equal(a.admit(conn("10.0.0.66")), device, "stalls fade: the source is unmarked again, and the oldest goes");
});
