// Every translator type a volfile may name.
import { replicateClass } from './cluster/replicate.js';
import { ioStatsClass } from './debug/io-stats.js';
import { locksClass } from './features/locks.js';
import { watchClass } from './features/watch.js';
import { createRegistry, type Registry } from './graph.js';
import { lmdbStorageClass } from './storage/lmdb.js';
import { protocolClientClass } from './protocol/client.js';
import { protocolServerClass } from './protocol/server.js';
import { memoryStorageClass } from './storage/memory.js';

export const registry: Registry = createRegistry([
  lmdbStorageClass, memoryStorageClass, locksClass, replicateClass, ioStatsClass, protocolServerClass, protocolClientClass,
  watchClass,
]);

export { buildGraph, loadGraph, Graph } from './graph.js';
export { switchGraph, type SwitchOptions } from './graph-switch.js';
export { formatVolfile, parseVolfile } from './volfile.js';
export { Translator, systemClock, type Clock, type GraphEnv } from './translator.js';
export { ProtocolServerTranslator } from './protocol/server.js';
export { ProtocolClientTranslator, type ProtocolClientDeps } from './protocol/client.js';
export type * from './fops.js';
