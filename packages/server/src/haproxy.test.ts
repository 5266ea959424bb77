// A real HAProxy (TCP mode, send-proxy-v2, round-robin) in front of a Bun and a Node server process:
// clients from distinct loopback addresses are served by both, and the servers' logs, metrics and
// per-address failure budget see those addresses, never HAProxy's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { legacy } from "@nstp/core";
import { collectStderr, haproxyBinary, referencePsk, scrapeMetrics, type ServerProcess, startHaproxy, startServerProcess, v2Handshake } from "@nstp/testkit";

const HAPROXY = haproxyBinary();
const psk = referencePsk(legacy.DEMO_PASSWORD, Buffer.from(legacy.DEMO_DEVICE_SALT), legacy.DEMO_USERNAME);
const wrong = Buffer.alloc(32, 9);

// --demo: behind --trusted-proxies the demo user is served only when asked for (salt-advice.ts).
const backendArgs = ["--port", "0", "--demo", "--trusted-proxies", "127.0.0.1", "--metrics", "127.0.0.1:0", "--log-level", "debug", "--log-format", "json", "--summary-interval", "0", "--shutdown-grace", "1"];

async function echo(port: number, localAddress: string, text: string): Promise<void> {
  const s = await v2Handshake(port, { username: legacy.DEMO_USERNAME, psk, localAddress });
  try {
    s.send([Buffer.from(text)]);
    assert.equal((await s.receive()).toString(), `${legacy.REFERENCE_REPLY_PREFIX}${text}`);
  } finally {
    s.destroy();
  }
}

/** Whether a v2 handshake was refused before message 2 (the busy signal): the failure budget at work. */
async function refused(port: number, localAddress: string, key: Buffer): Promise<boolean> {
  try {
    (await v2Handshake(port, { username: legacy.DEMO_USERNAME, psk: key, localAddress })).destroy();
    return false;
  } catch (e) {
    return /message 2 of 0 bytes/.test(String(e));
  }
}

const sum = (m: Map<string, number>, prefix: string) => [...m].filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);

test(
  "through HAProxy with send-proxy-v2 (then send-proxy): both backends serve clients from 127.0.0.2.., and see their addresses",
  { skip: !HAPROXY && "haproxy is not installed (.ci/run installs Debian's haproxy package)", timeout: 120_000 },
  async () => {
    const servers: ServerProcess[] = [];
    let haproxy: Awaited<ReturnType<typeof startHaproxy>> | undefined;
    let v1: typeof haproxy;
    try {
      servers.push(await startServerProcess("bun", backendArgs), await startServerProcess("node", backendArgs));
      const logs = servers.map((s) => collectStderr(s.child));
      haproxy = await startHaproxy(HAPROXY!, servers.map((s) => s.port));
      const before = await Promise.all(servers.map((s) => scrapeMetrics(s.metricsPort!)));

      const clients = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
      for (const [i, addr] of clients.entries()) for (let j = 0; j < 2; j++) await echo(haproxy.port, addr, `m${i}.${j}`);
      const after = await Promise.all(servers.map((s) => scrapeMetrics(s.metricsPort!)));
      for (const [i, m] of after.entries()) {
        const served = (m.get('nstp_handshakes_total{protocol="v2"}') ?? 0) - (before[i]!.get('nstp_handshakes_total{protocol="v2"}') ?? 0);
        assert.ok(served >= 2, `backend ${i} served ${served} of ${clients.length * 2}`);
        assert.ok((m.get('nstp_proxy_headers_total{version="2"}') ?? 0) >= served);
        assert.equal(sum(m, "nstp_proxy_header_failures_total"), 0, "HAProxy's headers all parsed");
      }

      // The failure budget is per client address: 127.0.0.9 guesses until both backends refuse it ...
      let guesses = 0;
      const refusedBy = new Set<number>();
      while (refusedBy.size < 2 && guesses < 200) {
        guesses++;
        await refused(haproxy.port, "127.0.0.9", wrong);
        const now = await Promise.all(servers.map((s) => scrapeMetrics(s.metricsPort!)));
        now.forEach((m, i) => (m.get("nstp_connections_refused_total") ?? 0) > 0 && refusedBy.add(i));
      }
      assert.equal(refusedBy.size, 2, `both backends refused 127.0.0.9 within ${guesses} guesses`);
      // ... while another client of the same HAProxy is still served by both.
      const okBefore = await Promise.all(servers.map((s) => scrapeMetrics(s.metricsPort!)));
      for (let j = 0; j < 2; j++) await echo(haproxy.port, "127.0.0.10", `after ${j}`);
      const okAfter = await Promise.all(servers.map((s) => scrapeMetrics(s.metricsPort!)));
      okAfter.forEach((m, i) => {
        const n = (m.get('nstp_handshakes_total{protocol="v2"}') ?? 0) - (okBefore[i]!.get('nstp_handshakes_total{protocol="v2"}') ?? 0);
        assert.equal(n, 1, `backend ${i} served 127.0.0.10 once`);
      });

      // The logs name the clients, never HAProxy's address.
      const seen = () => logs.every((l) => l.text().includes('"remote":"127.0.0.9"') && l.text().includes('"remote":"127.0.0.10"'));
      for (let i = 0; i < 50 && !seen(); i++) await new Promise((r) => setTimeout(r, 100));
      const remotes = logs.map((l) => new Set([...l.text().matchAll(/"remote":"([^"]+)"/g)].map((m) => m[1])));
      for (const [i, r] of remotes.entries()) {
        assert.ok(!r.has("127.0.0.1"), `backend ${i} logged HAProxy's address: ${[...r]}`);
        assert.ok(r.has("127.0.0.9") && r.has("127.0.0.10"), `backend ${i} logged ${[...r]}`);
      }
      const all = new Set(remotes.flatMap((r) => [...r]));
      for (const c of clients) assert.ok(all.has(c), `${c} in the logs`);

      // The same servers behind an HAProxy sending the text header (v1, `send-proxy`).
      v1 = await startHaproxy(HAPROXY!, servers.map((s) => s.port), "send-proxy");
      // Logs reach us through a pipe: poll (bounded) rather than guess how long a loaded machine takes.
      const loggedBoth = () => logs.every((l) => l.text().includes('"remote":"127.0.0.6"'));
      // Round robin over two backends, but HAProxy's readiness probe (from 127.0.0.254) may take a
      // turn, so two echoes can both land on one backend: echo until each has logged the client (at
      // most six echoes, each followed by a bounded wait for the logs).
      for (let j = 0; j < 6 && !loggedBoth(); j++) {
        await echo(v1.port, "127.0.0.6", `v1 ${j}`);
        for (let i = 0; i < (j === 0 ? 0 : 20) && !loggedBoth(); i++) await new Promise((r) => setTimeout(r, 100));
      }
      const v1Metrics = await Promise.all(servers.map((s) => scrapeMetrics(s.metricsPort!)));
      v1Metrics.forEach((m, i) => assert.ok((m.get('nstp_proxy_headers_total{version="1"}') ?? 0) >= 1, `backend ${i} took a v1 header`));
      for (let i = 0; i < 50 && !loggedBoth(); i++) await new Promise((r) => setTimeout(r, 100));
      const logged = logs.map((l) => [...new Set([...l.text().matchAll(/"remote":"([^"]+)"/g)].map((m) => m[1]))].join(" "));
      assert.ok(loggedBoth(), `127.0.0.6 logged by both (each backend's remotes: ${logged.join(" | ")})`);
    } finally {
      await v1?.stop();
      await haproxy?.stop();
      for (const s of servers) s.child.kill("SIGTERM");
    }
  },
);
