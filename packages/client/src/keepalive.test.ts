// The keepalive's rules on a fake peer (real timers, short intervals; bounded waits, no timing asserted).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Keepalive } from "./keepalive.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fakePeer(answers: boolean) {
  const p = { sentFrames: 0, heardFrames: 0, pings: 0, dead: -1, k: undefined as Keepalive | undefined };
  return Object.assign(p, {
    peer: {
      sent: () => p.sentFrames,
      heard: () => p.heardFrames,
      ping: () => {
        p.pings++;
        p.sentFrames++;
        if (answers) {
          p.heardFrames++;
          p.k?.noteInput();
        }
      },
      dead: (ms: number) => void (p.dead = ms),
    },
  });
}

test("keepalive: a peer that answers pings lives; one that does not is declared dead after two silent intervals", async () => {
  const live = fakePeer(true);
  const gone = fakePeer(false);
  live.k = new Keepalive(40, live.peer);
  gone.k = new Keepalive(40, gone.peer);
  for (const end = Date.now() + 3000; gone.dead < 0 && Date.now() < end; ) await sleep(10);
  await sleep(200);
  assert.ok(gone.dead >= 80, `declared dead after ${gone.dead} ms of silence`);
  assert.ok(gone.pings >= 1, "it pinged before judging");
  assert.equal(live.dead, -1, "the answering peer lives");
  // Pings counted once at least three intervals have passed, however late this host's timers run.
  for (let i = 0; i < 300 && live.pings < 3; i++) await sleep(10);
  assert.ok(live.pings >= 3, "an idle session pings every interval");
  live.k.stop();
});

test("keepalive: a timer that fires late (a stalled loop) pings and looks again instead of judging", async () => {
  const p = fakePeer(false);
  p.k = new Keepalive(40, p.peer);
  // Stall the loop for five intervals: the first fire is late and past the deadline.
  const stallUntil = Date.now() + 200;
  while (Date.now() < stallUntil);
  // The answer to the ping sent at the late fire arrives before the re-look.
  await sleep(5);
  assert.equal(p.dead, -1, "not judged at the late fire");
  assert.ok(p.pings >= 1);
  p.heardFrames++;
  p.k.noteInput();
  await sleep(30);
  assert.equal(p.dead, -1, "heard in time");
  p.k.stop();
});

test("keepalive: deadPeerMs sets the silence before a dead verdict (never under one interval)", async () => {
  const patient = fakePeer(false);
  const floor = fakePeer(false);
  patient.k = new Keepalive(40, patient.peer, 400);
  floor.k = new Keepalive(40, floor.peer, 5);
  for (const end = Date.now() + 3000; patient.dead < 0 && Date.now() < end; ) await sleep(10);
  assert.ok(patient.dead >= 400, `declared dead after ${patient.dead} ms of silence, asked for 400`);
  // At least two: a late timer pings once and looks again, so a stalled host sends fewer than ten.
  assert.ok(patient.pings >= 2, "it kept pinging while it waited");
  assert.ok(floor.dead >= 40, `a deadline under one interval is raised to one (${floor.dead} ms)`);
  patient.k.stop();
  floor.k.stop();
});
