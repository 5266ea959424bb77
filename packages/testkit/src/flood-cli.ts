/**
 * The stalled-handshake flood as its own process, as an attacker is:
 *   bun flood-cli.ts PORT N SECONDS [REPLAY_HEX]
 * Prints "flooding N" once the first N connections are open, then keeps N stalled handshakes open
 * (each reopened when the server closes it) for SECONDS, prints "opened TOTAL", and exits. With
 * REPLAY_HEX (a genuine v2 first flight, recorded), one connection in six replays it.
 */
import { stalledFlood, stallingFlights } from "./flood.ts";

const [port, n, seconds] = process.argv.slice(2, 5).map(Number);
if (!port || !n || !seconds) throw new Error("usage: flood-cli.ts PORT N SECONDS [REPLAY_HEX]");
const replay = process.argv[5] ? [Buffer.from(process.argv[5], "hex")] : [];
const flood = await stalledFlood(port, n, { maxOpens: seconds * 100_000, flights: [...stallingFlights(), ...replay] });
console.log(`flooding ${n}`);
await new Promise((r) => setTimeout(r, seconds * 1000));
console.log(`opened ${flood.opened}`);
flood.stop();
process.exit(0);
