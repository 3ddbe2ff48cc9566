// What a master tells about its protocol listener: where it listens, where its secret is, and
// the connection metrics the HTTP API appends to /metrics.
import type { Graph } from '../../translators/graph.js';
import { ProtocolServerTranslator } from '../../translators/protocol/server.js';

export interface ServerInfo {
  readonly host: string;
  readonly port: number;
  readonly secretFile: string;
  metrics(): string;
}

export function serverAddress(graph: Graph): ServerInfo | undefined {
  const srv = graph.translators.find((t): t is ProtocolServerTranslator => t instanceof ProtocolServerTranslator);
  if (!srv) return undefined;
  const { host, port } = srv.address;
  return {
    host,
    port,
    secretFile: srv.secretFile,
    metrics: () =>
      [
        '# HELP coordvol_connections Client connections open on the protocol listener.',
        '# TYPE coordvol_connections gauge',
        `coordvol_connections{listener="${srv.name}"} ${srv.connections}`,
        '',
      ].join('\n'),
  };
}
