// A daemon's view of the storage cluster's volume info (DESIGN §8): the volumes under /volumes/
// now, then every change to them in rev order, decoded.
//
//   const w = await watchVolumes(vol);
//   for await (const e of w) {
//     if (e.kind === 'current') for (const v of e.volumes) serve(v);
//     else if (e.kind === 'created' || e.kind === 'changed') serve(e.info);
//     else if (e.kind === 'deleted') forget(e.name);
//   }
//
// It is getAndWatch('/volumes/') with `resync` on (getAndWatch takes no resync): the prefix read
// at one rev R, then a watch from R + 1, which the library resumes across broken connections and
// moves without a gap or a duplicate. The helper keeps the decoded view itself, so it tells
// `created` from `changed` by the view, not by key versions; after a compaction overtook the
// watch, the library's resync is turned into the created/changed/deleted events that take the
// view to the new one (the steps in between are gone with the history). The brick index and
// other keys under /volumes/ are passed over; an info key whose value does not decode is a
// `skipped` event, and the volume leaves the view (a `deleted` before it, if it was in it).
import type { Rev } from '../common/ids.js';
import { decodeVolumeInfo, isInfoKey, VOLUMES_PREFIX, volumeNameOfKey, volumesOf, type SkippedVolume, type VolumeInfo } from '../mgmt/volume-info.js';
import type { KeyValue } from '../../translators/fops.js';
import type { Volume } from './volume.js';
import { readAll, type WatchMessage, type Watcher } from './watch.js';

export type { VolumeInfo, VolumeInfoStatus, VolumeType, SkippedVolume } from '../mgmt/volume-info.js';

export type VolumeInfoEvent =
  /** First, once: every volume at `rev` (sorted by name), and the info keys that do not decode. */
  | { readonly kind: 'current'; readonly rev: Rev; readonly volumes: readonly VolumeInfo[]; readonly skipped: readonly SkippedVolume[] }
  | { readonly kind: 'created'; readonly rev: Rev; readonly info: VolumeInfo }
  | { readonly kind: 'changed'; readonly rev: Rev; readonly info: VolumeInfo; readonly prev: VolumeInfo }
  | { readonly kind: 'deleted'; readonly rev: Rev; readonly name: string; readonly prev: VolumeInfo }
  /** An info key written with a value that is not a volume record. */
  | { readonly kind: 'skipped'; readonly rev: Rev; readonly key: string; readonly reason: string };

export interface VolumeWatcher extends AsyncIterable<VolumeInfoEvent> {
  /** Stops the watch; the iterator ends. */
  cancel(): Promise<void>;
}

/** The view: a volume's record and the modRev of its info key. */
interface Held {
  readonly info: VolumeInfo;
  readonly modRev: Rev;
}

class VolumeStream implements VolumeWatcher {
  private readonly view = new Map<string, Held>();
  private readonly first: VolumeInfoEvent;
  private started = false;

  constructor(
    rev: Rev,
    kvs: readonly KeyValue[],
    private readonly watcher: Watcher,
  ) {
    for (const kv of kvs) {
      const name = volumeNameOfKey(kv.key);
      const d = name === undefined ? undefined : decodeVolumeInfo(kv);
      if (name !== undefined && d !== undefined && 'ok' in d) this.view.set(name, { info: d.ok, modRev: kv.modRev });
    }
    this.first = { kind: 'current', rev, ...volumesOf(kvs) };
  }

  cancel(): Promise<void> {
    return this.watcher.cancel();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<VolumeInfoEvent> {
    if (this.started) throw new TypeError('a volume watcher is read by one consumer, once');
    this.started = true;
    yield this.first;
    for await (const m of this.watcher) yield* this.apply(m);
  }

  private apply(m: WatchMessage): VolumeInfoEvent[] {
    if (m.kind === 'progress') return [];
    if (m.kind === 'resync') return this.resync(m.rev, m.kvs);
    const out: VolumeInfoEvent[] = [];
    for (const e of m.events) {
      const name = volumeNameOfKey(e.kv.key);
      if (name === undefined) {
        // A key under /volumes/ named like an info key but not of a valid volume name: reported as a listing does.
        if (e.type === 'put' && isInfoKey(e.kv.key)) out.push({ kind: 'skipped', rev: m.rev, key: e.kv.key, reason: 'the key is not /volumes/<volume name>/info' });
        continue;
      }
      if (e.type === 'delete') out.push(...this.drop(m.rev, name));
      else out.push(...this.put(m.rev, name, e.kv));
    }
    return out;
  }

  private put(rev: Rev, name: string, kv: KeyValue): VolumeInfoEvent[] {
    const d = decodeVolumeInfo(kv);
    if ('bad' in d) return [...this.drop(rev, name), { kind: 'skipped', rev, key: kv.key, reason: d.bad }];
    const held = this.view.get(name);
    this.view.set(name, { info: d.ok, modRev: kv.modRev });
    return [held === undefined ? { kind: 'created', rev, info: d.ok } : { kind: 'changed', rev, info: d.ok, prev: held.info }];
  }

  private drop(rev: Rev, name: string): VolumeInfoEvent[] {
    const held = this.view.get(name);
    if (held === undefined) return [];
    this.view.delete(name);
    return [{ kind: 'deleted', rev, name, prev: held.info }];
  }

  /** After a compaction: the events that take the view to the whole prefix at `rev` (absent means deleted). */
  private resync(rev: Rev, kvs: readonly KeyValue[]): VolumeInfoEvent[] {
    const out: VolumeInfoEvent[] = [];
    const present = new Set<string>();
    for (const kv of kvs) {
      const name = volumeNameOfKey(kv.key);
      if (name === undefined) continue;
      present.add(name);
      if (this.view.get(name)?.modRev !== kv.modRev) out.push(...this.put(rev, name, kv));
    }
    for (const name of [...this.view.keys()]) if (!present.has(name)) out.push(...this.drop(rev, name));
    return out;
  }
}

/**
 * The volumes under /volumes/ now (the first event, `current`), then every change in rev order:
 * `created`, `changed` (with the record before), `deleted` (with the record removed), `skipped`.
 * Resumed across broken connections and compactions; one consumer.
 */
export async function watchVolumes(volume: Pick<Volume, 'range' | 'watch'>): Promise<VolumeWatcher> {
  const { rev, kvs } = await readAll(volume, { prefix: VOLUMES_PREFIX });
  const watcher = volume.watch(VOLUMES_PREFIX, { fromRev: rev + 1, resync: true });
  return new VolumeStream(rev, kvs, watcher);
}
