// The demo credentials' advice: the demo user is refused on a host others can reach unless --demo.
import { test } from "node:test";
import assert from "node:assert/strict";
import { demoUserRefusal, isLoopbackHost } from "./salt-advice.ts";

test("loopback hosts are 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost; any other address or name is not", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost", "LOCALHOST"]) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ["0.0.0.0", "::", "", "10.0.0.1", "192.0.2.1", "fd00::1", "::ffff:10.0.0.1", "example.com", "128.0.0.1"]) assert.equal(isLoopbackHost(h), false, h);
});

test("the demo user is refused on a non-loopback host unless --demo, and never with a users store", () => {
  assert.match(demoUserRefusal("0.0.0.0", { usersStore: false, demo: false }) ?? "", /refusing to serve the reference demo user .* on 0\.0\.0\.0.*--users FILE.*--demo/);
  assert.equal(demoUserRefusal("0.0.0.0", { usersStore: false, demo: true }), undefined);
  assert.equal(demoUserRefusal("0.0.0.0", { usersStore: true, demo: false }), undefined);
  assert.equal(demoUserRefusal("127.0.0.1", { usersStore: false, demo: false }), undefined);
});
