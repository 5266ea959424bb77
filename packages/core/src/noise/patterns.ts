/**
 * The handshake patterns this library runs (Noise spec rev. 34, §7.4 and §9.2). NNpsk0 is the one
 * protocol v2 uses; NN, NNpsk2 and XXpsk3 are here so the cacophony vectors check the general code.
 */
export type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

export interface HandshakePattern {
  readonly name: string;
  /** Pre-message tokens (§7.1): "s" for a static key known in advance. */
  readonly initiatorPre: readonly Token[];
  readonly responderPre: readonly Token[];
  /** Messages in order; even indexes are sent by the initiator. */
  readonly messages: readonly (readonly Token[])[];
}

export const PATTERNS: Record<string, HandshakePattern> = {
  NN: { name: "NN", initiatorPre: [], responderPre: [], messages: [["e"], ["e", "ee"]] },
  NNpsk0: { name: "NNpsk0", initiatorPre: [], responderPre: [], messages: [["psk", "e"], ["e", "ee"]] },
  NNpsk2: { name: "NNpsk2", initiatorPre: [], responderPre: [], messages: [["e"], ["e", "ee", "psk"]] },
  XXpsk3: { name: "XXpsk3", initiatorPre: [], responderPre: [], messages: [["e"], ["e", "ee", "s", "es"], ["s", "se", "psk"]] },
};

/** Parses "Noise_<pattern>_25519_AESGCM_SHA256", the only suite implemented. */
export function parseProtocolName(name: string): HandshakePattern {
  const m = /^Noise_([A-Za-z0-9]+)_25519_AESGCM_SHA256$/.exec(name);
  const pattern = m ? PATTERNS[m[1]!] : undefined;
  if (!pattern) throw new RangeError(`unsupported Noise protocol ${name}`);
  return pattern;
}
