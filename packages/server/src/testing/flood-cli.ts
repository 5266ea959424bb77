/**
 * The stalled-handshake flood as its own process, as an attacker is: bun flood-cli.ts PORT N SECONDS.
 * Prints "flooding N" once the first N connections are open, then keeps N stalled handshakes open
 * (each reopened when the server closes it) for SECONDS, prints "opened TOTAL", and exits.
 */
import { stalledFlood } from "./flood.ts";

const [port, n, seconds] = process.argv.slice(2).map(Number);
if (!port || !n || !seconds) throw new Error("usage: flood-cli.ts PORT N SECONDS");
const flood = await stalledFlood(port, n, { maxOpens: seconds * 100_000 });
console.log(`flooding ${n}`);
await new Promise((r) => setTimeout(r, seconds * 1000));
console.log(`opened ${flood.opened}`);
flood.stop();
process.exit(0);
