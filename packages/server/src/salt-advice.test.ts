// The demo credentials' advice: the demo user is refused on a host others can reach (or behind a proxy) unless --demo.
import { test } from "node:test";
import assert from "node:assert/strict";
import { demoUserRefusal, isLoopbackHost } from "./salt-advice.ts";

test("loopback hosts are 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost; any other address or name is not", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost", "LOCALHOST"]) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ["0.0.0.0", "::", "", "10.0.0.1", "192.0.2.1", "fd00::1", "::ffff:10.0.0.1", "example.com", "128.0.0.1"]) assert.equal(isLoopbackHost(h), false, h);
});

test("the demo user is refused on a non-loopback host unless --demo, and never with a users store", () => {
  assert.match(demoUserRefusal("0.0.0.0", { usersStore: false, demo: false, trustedProxies: false }) ?? "", /refusing to serve the reference demo user .* on 0\.0\.0\.0.*--users FILE.*--demo/);
  assert.equal(demoUserRefusal("0.0.0.0", { usersStore: false, demo: true, trustedProxies: false }), undefined);
  assert.equal(demoUserRefusal("0.0.0.0", { usersStore: true, demo: false, trustedProxies: false }), undefined);
  assert.equal(demoUserRefusal("127.0.0.1", { usersStore: false, demo: false, trustedProxies: false }), undefined);
});

test("behind --trusted-proxies the demo user is refused even on a loopback host, unless --demo or a users store", () => {
  // A public load balancer forwarding to 127.0.0.1 makes the loopback listener reachable from anywhere.
  assert.match(demoUserRefusal("127.0.0.1", { usersStore: false, demo: false, trustedProxies: true }) ?? "", /refusing to serve the reference demo user .*--trusted-proxies.*--users FILE.*--demo/);
  assert.equal(demoUserRefusal("127.0.0.1", { usersStore: false, demo: true, trustedProxies: true }), undefined);
  assert.equal(demoUserRefusal("127.0.0.1", { usersStore: true, demo: false, trustedProxies: true }), undefined);
});
