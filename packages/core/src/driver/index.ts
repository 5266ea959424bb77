export { ReadGate } from "./read-gate.ts";
