export { AeadPlacement, type PooledAead } from "./aead-placement.ts";
export { Deadline, PartialInputDeadline, type PartialInputOwner } from "./deadline.ts";
export { Flow } from "./flow.ts";
export { HandshakeReader, type HandshakeIo, clientHandshake } from "./handshake.ts";
export { Outbox, type OutboxOwner } from "./outbox.ts";
