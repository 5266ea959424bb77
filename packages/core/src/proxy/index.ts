export * from "./wire.ts";
export { addressBytes, formatAddress, normalizeAddress, parseDecimal, parseIPv4, parseIPv6 } from "./addresses.ts";
