// Membership changes and snapshot heals at the holder (replication/holder.ts, config.ts;
// DESIGN §4.7, §4.8), driven by hand over bricks that answer at once: one change at a time,
// learners sent everything and counted for nothing, promotion only after catching up, a
// removed holder stepping down, and a brick the local log cannot serve healed by a snapshot.
import { describe, expect, it } from 'vitest';
import { asEpoch, asRev, NO_SESSION, type Rev } from '../../src/common/ids.js';
import { applyConfigChange, quorumOf, type ConfigChange } from '../../replication/config.js';
import { Holder, type HolderOutput, type Outcome } from '../../replication/holder.js';
import type { AppendResult } from '../../replication/messages.js';
import type { StateView } from '../../replication/state-view.js';
import type { Entry, VolumeConfig } from '../../store/types.js';

const empty: StateView = { get: () => undefined, scan: () => [] };
const LEASE = 300;
const CONFIG: VolumeConfig = { volumeName: 'v', bricks: ['a', 'b', 'c'], quorumCount: 2 };
const configEntry: Entry = { epoch: asEpoch(0), rev: asRev(1), effects: [{ t: 'config', config: CONFIG }] };

/** Bricks that take appends at once (log matching by rev and epoch), unless down; the holder's brick is 'a'. */
class Bricks {
  readonly logs = new Map<string, Entry[]>();
  readonly down = new Set<string>();
  readonly replies = new Map<number, Outcome>();
  readonly snapshotsAsked: string[] = [];
  readonly stepDowns: string[] = [];
  now = 0;
  private nextId = 1;

  constructor(
    readonly h: Holder,
    bricks: readonly string[],
    logOf: (b: string) => Entry[] = () => [configEntry],
  ) {
    for (const b of bricks) this.logs.set(b, logOf(b));
  }

  run(out: readonly HolderOutput[]): void {
    const queue = [...out];
    while (queue.length > 0) {
      const o = queue.shift() as HolderOutput;
      if (o.kind === 'reply') this.replies.set(o.id, o.outcome);
      else if (o.kind === 'snapshot') this.snapshotsAsked.push(o.to);
      else if (o.kind === 'stepped-down') this.stepDowns.push(o.reason.code);
      else if (o.kind === 'append' && !this.down.has(o.to)) {
        const log = this.logs.get(o.to) as Entry[];
        const held = log.at(-1)?.rev ?? 0;
        let res: AppendResult;
        if (o.msg.prevRev > held || (o.msg.prevRev > 0 && log[o.msg.prevRev - 1]?.epoch !== o.msg.prevEpoch)) {
          res = { ok: false, reason: 'mismatch', hintEpoch: undefined, hintFirstRev: undefined, lastRev: asRev(held) };
        } else {
          for (const e of o.msg.entries) log[e.rev - 1] = e;
          const covered = o.msg.prevRev + o.msg.entries.length;
          res = { ok: true, lastRev: asRev(covered), commitRev: asRev(Math.min(o.msg.commitRev, covered)) };
        }
        queue.push(...this.h.onAppendReply(o.to, res, this.now, this.now, o.msg.entries.length));
      }
    }
  }

  propose(op: Parameters<Holder['propose']>[1]): number {
    const id = this.nextId++;
    this.run(this.h.propose(id, op, this.now));
    this.run(this.h.flush(this.now));
    return id;
  }

  change(c: ConfigChange): number {
    return this.propose({ type: 'config-change', args: c });
  }

  put(key: string): number {
    return this.propose({ type: 'put', args: { key, value: new Uint8Array([1]), session: NO_SESSION } });
  }

  /** Time passes in ticks (heartbeats go out and are answered). */
  advance(ms: number): void {
    for (let t = 0; t < ms; t += 20) {
      this.now += 20;
      this.run(this.h.tick(this.now));
    }
  }

  code(id: number): string | undefined {
    const o = this.replies.get(id);
    return o === undefined ? undefined : o.ok ? 'ok' : o.error.code;
  }
}

function holderOver(config: VolumeConfig, init: Partial<ConstructorParameters<typeof Holder>[0]> = {}): Holder {
  return new Holder({
    epoch: asEpoch(1),
    config,
    local: 'a',
    last: { epoch: asEpoch(0), rev: asRev(1) },
    commitRev: asRev(1),
    compactRev: asRev(0),
    base: () => empty,
    sclock: 0,
    sessionTtlMinMs: 2_000,
    leaseMs: LEASE,
    ...init,
  });
}

/** A holder on brick a whose local log is a's log in `net`. */
function cluster(config: VolumeConfig, bricks: readonly string[]): { h: Holder; net: Bricks } {
  let net: Bricks | undefined;
  const h = holderOver(config, { entryAt: (rev: Rev) => net?.logs.get('a')?.[rev - 1] });
  net = new Bricks(h, bricks);
  return { h, net };
}

describe('config changes (DESIGN §4.7)', () => {
  it('refuses a change before the epoch-start commits, and a second change before the first commits', () => {
    const { h, net } = cluster(CONFIG, ['a', 'b', 'c', 'd']);
    net.down.add('b').add('c');
    net.run(h.start(0));
    expect(h.isReady).toBe(false);
    const early = net.change({ op: 'add-learner', brick: 'd' });
    // A refusal read from the working state waits for its rev to commit, as every answer does.
    expect(net.code(early)).toBeUndefined();
    net.down.clear();
    net.advance(LEASE); // retransmissions reach b and c: the epoch-start commits
    expect(h.isReady).toBe(true);
    expect(net.code(early)).toBe('config-pending');
    net.down.add('b').add('c');
    const first = net.change({ op: 'add-learner', brick: 'd' });
    const second = net.change({ op: 'quorum-count', count: 3 });
    expect(net.code(first)).toBeUndefined(); // d's ack does not count: a learner
    net.down.clear();
    net.advance(LEASE);
    expect(net.code(first)).toBe('ok');
    expect(net.code(second)).toBe('config-pending');
    expect(h.membership).toMatchObject({ committed: true, config: { bricks: ['a', 'b', 'c'], learners: ['d'] } });
  });

  it('sends a learner every entry, promotes it only once caught up, then counts it', () => {
    const { h, net } = cluster(CONFIG, ['a', 'b', 'c', 'd']);
    net.run(h.start(0));
    expect(h.isReady).toBe(true);
    const add = net.change({ op: 'add-learner', brick: 'd' });
    expect(net.code(add)).toBe('ok');
    const put = net.put('/x');
    expect(net.code(put)).toBe('ok');
    // d was found by a mismatch and sent everything after its (0, 1).
    expect(net.logs.get('d')?.map((e) => e.rev)).toEqual(net.logs.get('a')?.map((e) => e.rev));
    const tooSoon = net.change({ op: 'promote', brick: 'd' });
    expect(net.code(tooSoon)).toBe('learner-behind');
    net.advance(LEASE / 3 + 40);
    const promote = net.change({ op: 'promote', brick: 'd' });
    expect(net.code(promote)).toBe('ok');
    expect(h.membership.config).toMatchObject({ bricks: ['a', 'b', 'c', 'd'] });
    expect(h.membership.config.learners).toBeUndefined();
    // Four voters: a quorum is three. With c and d down, nothing commits; with d back, it does.
    net.down.add('c').add('d');
    const blocked = net.put('/y');
    expect(net.code(blocked)).toBeUndefined();
    net.down.delete('d');
    net.advance(LEASE);
    expect(net.code(blocked)).toBe('ok');
  });

  it('refuses a change whose new quorum does not answer now (it could never commit)', () => {
    const { h, net } = cluster(CONFIG, ['a', 'b', 'c']);
    net.run(h.start(0));
    net.down.add('c');
    net.advance(LEASE + 40); // c has not answered for a lease
    // Without b, the voters would be a and c, both needed: c does not answer.
    const remove = net.change({ op: 'remove', brick: 'b' });
    net.advance(40);
    expect(net.code(remove)).toBe('no-quorum');
    expect(h.membership.config.bricks).toEqual(['a', 'b', 'c']);
    const strict = net.change({ op: 'quorum-count', count: 3 });
    net.advance(40);
    expect(net.code(strict)).toBe('no-quorum');
    // c back: the same removal goes through.
    net.down.clear();
    net.advance(LEASE);
    const again = net.change({ op: 'remove', brick: 'b' });
    net.advance(40);
    expect(net.code(again)).toBe('ok');
    expect(h.membership.config.bricks).toEqual(['a', 'c']);
  });

  it('a holder whose own brick is removed steps down once that config commits', () => {
    const { h, net } = cluster(CONFIG, ['a', 'b', 'c']);
    net.run(h.start(0));
    const remove = net.change({ op: 'remove', brick: 'a' });
    expect(net.code(remove)).toBe('ok');
    expect(net.stepDowns).toEqual(['not-holder']);
    expect(h.isDown).toBe(true);
    // The config entry both b and c hold names only them.
    expect(net.logs.get('b')?.at(-1)?.effects).toEqual([{ t: 'config', config: { volumeName: 'v', bricks: ['b', 'c'], quorumCount: 2 } }]);
  });

  it('well-formed changes only: one brick, quorum-count within range, never the last voter', () => {
    const one: VolumeConfig = { volumeName: 'v', bricks: ['a'], quorumCount: 1 };
    const err = (c: VolumeConfig, ch: ConfigChange): string | undefined => {
      const r = applyConfigChange(c, ch);
      return 'bricks' in r ? undefined : r.code;
    };
    expect(err(one, { op: 'remove', brick: 'a' })).toBe('invalid-argument');
    expect(err(one, { op: 'promote', brick: 'b' })).toBe('invalid-argument');
    expect(err(one, { op: 'add-learner', brick: 'a' })).toBe('invalid-argument');
    expect(err(CONFIG, { op: 'quorum-count', count: 1 })).toBe('invalid-argument'); // below a majority
    expect(err(CONFIG, { op: 'quorum-count', count: 4 })).toBe('invalid-argument'); // above the voters
    expect(err({ ...CONFIG, quorumCount: 3 }, { op: 'remove', brick: 'c' })).toBe('invalid-argument');
    // 1 → 2 → 3 voters, one brick at a time; transitional size 2 needs both.
    const two = applyConfigChange(applyConfigChange(one, { op: 'add-learner', brick: 'b' }) as VolumeConfig, { op: 'promote', brick: 'b' }) as VolumeConfig;
    expect(two).toEqual({ volumeName: 'v', bricks: ['a', 'b'], quorumCount: 1 });
    expect(quorumOf(two)).toBe(2);
    const learner = applyConfigChange(CONFIG, { op: 'add-learner', brick: 'd' }) as VolumeConfig;
    expect(applyConfigChange(learner, { op: 'remove', brick: 'd' })).toEqual(CONFIG);
  });
});

describe('snapshot heal (DESIGN §4.8)', () => {
  /** A holder whose local log starts at rev 90 (older entries trimmed), over bricks a and b at rev 100 and c at rev 1. */
  function trimmed(): { h: Holder; net: Bricks } {
    const entries: Entry[] = [configEntry];
    for (let r = 2; r <= 100; r++) entries.push({ epoch: asEpoch(0), rev: asRev(r), effects: [] });
    let net: Bricks | undefined;
    const h = holderOver(CONFIG, {
      last: { epoch: asEpoch(0), rev: asRev(100) },
      commitRev: asRev(100),
      entryAt: (rev: Rev) => (rev >= 90 ? net?.logs.get('a')?.[rev - 1] : undefined),
    });
    net = new Bricks(h, ['a', 'b', 'c'], (b) => (b === 'c' ? [configEntry] : [...entries]));
    return { h, net };
  }

  it('asks for a snapshot when the local log cannot serve a brick, once, and appends from its rev after', () => {
    const { h, net } = trimmed();
    net.run(h.start(0));
    expect(h.isReady).toBe(true); // a and b are a quorum
    net.advance(40);
    expect(net.snapshotsAsked).toEqual(['c']);
    net.advance(LEASE);
    expect(net.snapshotsAsked).toEqual(['c']); // one transfer at a time
    // The carrier installed the state at 101 (the epoch-start): c's log now ends there.
    net.logs.set('c', [...(net.logs.get('a') as Entry[])].slice(0, 101));
    net.run(h.onSnapshotReply('c', { ok: true, lastRev: asRev(101), commitRev: asRev(101) }, net.now, net.now));
    const put = net.put('/after');
    expect(net.code(put)).toBe('ok');
    expect(net.logs.get('c')?.at(-1)?.rev).toBe(h.lastRev);
  });

  it('asks again after a failed transfer; a fenced answer counts as a fence', () => {
    const { h, net } = trimmed();
    net.run(h.start(0));
    net.advance(40);
    expect(net.snapshotsAsked).toEqual(['c']);
    net.run(h.onSnapshotReply('c', { ok: false, reason: 'failed', message: 'connection lost' }, net.now, net.now));
    net.advance(LEASE + 40);
    expect(net.snapshotsAsked).toEqual(['c', 'c']);
    net.run(h.onSnapshotReply('c', { ok: false, reason: 'fenced', promisedEpoch: asEpoch(5) }, net.now, net.now));
    expect(h.fencedBy).toBe(5);
    expect(h.isDown).toBe(false); // a and b are still a quorum
  });
});
