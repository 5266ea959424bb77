/**
 * A client and a server machine of one registered version, established in memory (key confirmation
 * included where the version has it), for tests of what runs once a session is up.
 */
import { utf8 } from "../bytes.ts";
import type { CryptoBackend } from "../crypto/backend.ts";
import type { Output } from "../events.ts";
import type { ClientMachine, ServerMachine } from "../machine.ts";
import type { ProtocolEntry } from "../registry.ts";
import { verifierFromPsk } from "../v3/keys.ts";

export function establishedPair(entry: ProtocolEntry, crypto: CryptoBackend): { client: ClientMachine; server: ServerMachine } {
  const deviceSalt = new Uint8Array(8);
  const psk = crypto.sha256(utf8("psk"));
  const credential = { psk, verifier: verifierFromPsk(crypto, psk, deviceSalt, utf8("alice")) };
  const client = entry.client({ crypto, username: "alice", deviceSalt, psk });
  const server = entry.server({ crypto, deviceSalt });
  let serverUp = false;
  const toServer = (outs: Output[]) => {
    for (const o of outs) if (o.type === "send") toClient(server.receive(o.data));
  };
  const toClient = (outs: Output[]) => {
    for (const o of outs) {
      if (o.type === "send") toServer(client.receive(o.data));
      else if (o.type === "need-key") toClient(server.provideCredential(credential));
      else if (o.type === "established") serverUp = true;
    }
  };
  toServer(client.start());
  // Where the server counts the session only once the client's first frame authenticates.
  if (!serverUp && client.ping) toClient(server.receive(client.ping()));
  if (!client.established || !serverUp) throw new Error(`${entry.name}: the pair did not establish`);
  return { client, server };
}
