export { AeadPlacement, type PooledAead } from "./aead-placement.ts";
export { Deadline, PartialInputDeadline } from "./deadline.ts";
export { Flow } from "./flow.ts";
export { HandshakeReader, type HandshakeIo, clientHandshake } from "./handshake.ts";
export { Outbox } from "./outbox.ts";
