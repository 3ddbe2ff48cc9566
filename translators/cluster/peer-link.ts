// The link from a master's replicate to another master's brick: a protocol/client with the
// settings brick traffic needs. One definition for the volfiles that name the link and for the
// links cluster/replicate makes at run time to bricks a config change added (DESIGN §8).
import { parseOptions } from '../options.js';
import { protocolClientClass } from '../protocol/client.js';
import type { GraphEnv, Translator } from '../translator.js';

export interface PeerLinkOption {
  readonly key: string;
  readonly value: string;
}

/** The options of a link to the master at `remote` (host:port). */
export function peerLinkOptions(remote: string, secretFile: string, volumeId?: string): PeerLinkOption[] {
  return [
    { key: 'remote', value: remote },
    { key: 'secret-file', value: secretFile },
    ...(volumeId !== undefined ? [{ key: 'expect-volume-id', value: volumeId }] : []),
    // Brick traffic needs quick failure detection: a dead peer must not hold a lease round.
    { key: 'ping-ms', value: '500ms' },
    { key: 'ping-timeout-ms', value: '1000ms' },
    { key: 'reconnect-max-ms', value: '500ms' },
    // A forwarded exactly-once write whose holder died is routed again at once (to the next
    // holder, same origin), not held for this link's reconnect.
    { key: 'resend-writes', value: 'off' },
  ];
}

/** A link made at run time (not from a volfile), initialised: it connects in the background. */
export async function openPeerLink(name: string, remote: string, secretFile: string, volumeId: string, env: GraphEnv): Promise<Translator> {
  const given = peerLinkOptions(remote, secretFile, volumeId).map((o) => ({ ...o, line: 0 }));
  const options = parseOptions(protocolClientClass.options, given, { file: '(run time)', volume: name, line: 0 });
  const link = protocolClientClass.create({ name, type: protocolClientClass.type, options, children: [], env });
  await link.init();
  return link;
}
