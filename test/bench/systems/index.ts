// The systems compare.ts knows, by command-line name.
import { CoordvolDriver, CoordvolEmbeddedDriver } from './coordvol.js';
import { EtcdDriver } from './etcd.js';
import type { DriverOptions, SystemDriver } from './types.js';
import { ZooKeeperDriver } from './zookeeper.js';

export { Unavailable, type DriverOptions, type KvClient, type ReadMode, type SystemDriver } from './types.js';

export const SYSTEMS: Readonly<Record<string, (o: DriverOptions) => SystemDriver>> = {
  coordvol: (o) => new CoordvolDriver(o),
  'coordvol-at-most-once': (o) => new CoordvolDriver(o, false),
  'coordvol-embedded': (o) => new CoordvolEmbeddedDriver(o),
  etcd: (o) => new EtcdDriver(o),
  zookeeper: (o) => new ZooKeeperDriver(o),
};

/** The label used in tables. */
export const LABEL: Readonly<Record<string, string>> = {
  coordvol: 'coordvol',
  'coordvol-at-most-once': 'coordvol (writes not exactly-once)',
  'coordvol-embedded': 'coordvol (embedded)',
  etcd: 'etcd',
  zookeeper: 'ZooKeeper',
};
