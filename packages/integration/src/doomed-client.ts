/**
 * A client process that stops at a chosen point and waits to be killed (faults.test.ts):
 *   doomed-client PORT mid-handshake | mid-message | mid-reply
 * Prints "ready" once it is where it should be.
 */
import { legacy } from "@nstp/core";
import { dial, Reader, referencePsk, v2Handshake } from "@nstp/testkit";

const [port, mode] = [Number(process.argv[2]), process.argv[3]];
const psk = referencePsk(legacy.DEMO_PASSWORD, Buffer.from(legacy.DEMO_DEVICE_SALT), legacy.DEMO_USERNAME);

if (mode === "mid-handshake") {
  const s = await dial(port);
  new Reader(s);
  s.write(Buffer.from([0, 0x4e, 0x53, 0x54, 0x50, 2, 5, ...Buffer.from("alice")]));
} else {
  const peer = await v2Handshake(port, { username: "alice", psk });
  const big = peer.encode([Buffer.alloc(mode === "mid-message" ? 4 << 20 : 1 << 20, 7)]);
  // mid-message: half of a 4 MiB message; mid-reply: a whole 1 MiB message, replies never read.
  peer.reader.socket.write(mode === "mid-message" ? big.subarray(0, big.length >> 1) : big);
  if (mode === "mid-reply") peer.reader.socket.pause();
}
console.log("ready");
setInterval(() => {}, 1000);
