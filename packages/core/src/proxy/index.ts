export * from "./wire.ts";
export { normalizeAddress, parseIPv4, parseIPv6, formatAddress } from "./addresses.ts";
