// features/locks on a brick: the volume lock's brick side (DESIGN §4.2, §4.5). It keeps the
// promise (promisedEpoch and grantee, durable before any reply) and the volatile lease record,
// grants lock(e) by the rules of §4.2, fences appends of older epochs, and takes appends by the
// log-matching rules of §4.5. It sits directly on a storage translator and writes through it.
import { assert } from '../../src/common/assert.js';
import { coordError } from '../../src/common/errors.js';
import { asRev, type Epoch, type Rev } from '../../src/common/ids.js';
import { prefixEnd } from '../../src/common/keys.js';
import { decodeNumber, EPOCHS_PREFIX } from '../../replication/sessions.js';
import type { BrickStore } from '../../store/index.js';
import type { BrickWrite, Entry } from '../../store/types.js';
import type { AppendArgs, AppendResult, LockArgs, LockResult } from '../fops.js';
import type { OptionSchema, OptionValues } from '../options.js';
import { StorageTranslator } from '../storage/brick.js';
import { Translator, type TranslatorClass, type TranslatorSpec } from '../translator.js';

const options = {
  'lease-ms': { type: 'time', min: 10, max: 60_000, default: 500, description: 'how long an append or heartbeat keeps other candidates from locking' },
} as const satisfies OptionSchema;

interface Lease {
  readonly epoch: Epoch;
  /** undefined: unknown (set at start, DESIGN §4). */
  readonly holder: string | undefined;
  readonly deadlineMs: number;
}

export class LocksTranslator extends Translator {
  private readonly leaseMs: number;
  private storage: StorageTranslator | undefined;
  private lease: Lease | undefined;
  private grants = 0;
  private fenced = 0;
  private mismatches = 0;
  /** Monotonic ms of the last change to the brick's log (append or truncation), or of the start. */
  private logChangedMs = 0;

  constructor(spec: TranslatorSpec) {
    super(spec);
    this.leaseMs = (spec.options as OptionValues<typeof options>)['lease-ms'];
    this.handlers.lock = (_ctx, args) => this.lock(args);
    this.handlers.append = (_ctx, args) => this.append(args);
  }

  override async init(): Promise<void> {
    const child = this.children[0];
    if (!(child instanceof StorageTranslator)) {
      throw coordError('volfile-invalid', `${this.name} (features/locks) must sit directly on a storage translator, not ${child?.type ?? 'nothing'}`);
    }
    this.storage = child;
    // A restarted brick does not know whether a holder's lease is still running: it waits one
    // lease before granting (DESIGN §4 "Brick volatile state").
    this.lease = { epoch: child.store.promisedEpoch, holder: undefined, deadlineMs: this.env.clock.nowMs() + this.leaseMs };
    this.logChangedMs = this.env.clock.nowMs();
    await super.init();
  }

  private get store(): BrickStore {
    assert(this.storage !== undefined, 'locks is initialised');
    return this.storage.store;
  }

  /** Grant iff e > promisedEpoch and the lease has lapsed or is (promisedEpoch, candidate). */
  private async lock(a: LockArgs): Promise<LockResult> {
    const s = this.store;
    if (a.epoch <= s.promisedEpoch) return { granted: false, promisedEpoch: s.promisedEpoch, reason: 'epoch' };
    const l = this.lease;
    const lapsed = !l || this.env.clock.nowMs() >= l.deadlineMs;
    const renewal = l !== undefined && l.epoch === s.promisedEpoch && l.holder === a.candidate;
    if (!lapsed && !renewal) return { granted: false, promisedEpoch: s.promisedEpoch, reason: 'lease' };
    // Any rise of promisedEpoch clears the lease first; a grant creates none.
    this.lease = undefined;
    await s.write({ promise: { epoch: a.epoch, grantee: a.candidate } });
    this.grants++;
    const now = this.env.clock.nowMs();
    return {
      granted: true,
      brickId: s.identity.brickId,
      last: s.last,
      commitRev: s.commitRev,
      compactRev: s.compactRev,
      config: s.config,
      lastSclock: lastSclock(s, this.storage as StorageTranslator),
      quietMs: Math.max(0, now - this.logChangedMs),
      leaseMs: this.leaseMs,
    };
  }

  private async append(m: AppendArgs): Promise<AppendResult> {
    const s = this.store;
    if (m.epoch < s.promisedEpoch) {
      this.fenced++;
      return { ok: false, reason: 'fenced', promisedEpoch: s.promisedEpoch };
    }
    const w: { promise?: NonNullable<BrickWrite['promise']>; truncateFrom?: Rev; append?: Entry[]; commitRev?: Rev } = {};
    if (m.epoch > s.promisedEpoch) {
      this.lease = undefined;
      w.promise = { epoch: m.epoch, grantee: m.sender };
    }
    // Every append at epoch = promisedEpoch, even a refused one, renews the lease record.
    this.lease = { epoch: m.epoch, holder: m.sender, deadlineMs: this.env.clock.nowMs() + this.leaseMs };
    if (!this.holdsPrev(s, m.prevEpoch, m.prevRev)) {
      this.mismatches++;
      if (w.promise) await s.write({ promise: w.promise });
      return this.mismatch(s, m.prevRev);
    }
    const fresh: Entry[] = [];
    for (const e of m.entries) {
      if (fresh.length === 0 && e.rev <= s.last.rev) {
        const mine = s.epochAt(e.rev);
        if (mine === e.epoch) continue; // same rev, same epoch: already held
        if (mine !== undefined || e.rev > s.firstRev) {
          // Same rev, other epoch: drop it and everything after it (never committed).
          assert(e.rev > s.commitRev, `a conflicting entry at ${e.rev} is above commitRev ${s.commitRev}`);
          w.truncateFrom = e.rev;
        } else {
          continue; // below the retained log and committed: held in the state already
        }
      }
      fresh.push(e);
    }
    if (fresh.length > 0) w.append = fresh;
    if (w.append || w.truncateFrom !== undefined) this.logChangedMs = this.env.clock.nowMs();
    const covered = asRev(m.prevRev + m.entries.length);
    const commit = asRev(Math.min(m.commitRev, covered));
    if (commit > s.commitRev) w.commitRev = commit;
    await s.write(w);
    this.storage?.notifyCommitted();
    return { ok: true, lastRev: covered, commitRev: s.commitRev };
  }

  /** Log matching: the brick holds (prevEpoch, prevRev), or prevRev is committed here already. */
  private holdsPrev(s: BrickStore, prevEpoch: Epoch, prevRev: Rev): boolean {
    if (prevRev > s.last.rev) return false;
    const e = s.epochAt(prevRev);
    if (e !== undefined) return e === prevEpoch;
    return prevRev <= s.commitRev; // trimmed from the log: committed, so identical everywhere
  }

  /** Refusal with a hint: the epoch at prevRev, the first rev held of that epoch, lastRev. */
  private mismatch(s: BrickStore, prevRev: Rev): AppendResult {
    const hintEpoch = prevRev <= s.last.rev ? s.epochAt(prevRev) : undefined;
    let first: Rev | undefined;
    if (hintEpoch !== undefined) {
      let r = prevRev;
      while (r - 1 >= s.firstRev && s.epochAt(asRev(r - 1)) === hintEpoch) r = asRev(r - 1);
      first = r;
    }
    return { ok: false, reason: 'mismatch', hintEpoch, hintFirstRev: first, lastRev: s.last.rev };
  }

  override dump(): Readonly<Record<string, unknown>> {
    const s = this.storage?.isUp ? this.store : undefined;
    return {
      promisedEpoch: s?.promisedEpoch,
      grantee: s?.grantee,
      lease: this.lease ? { ...this.lease, remainingMs: Math.max(0, this.lease.deadlineMs - this.env.clock.nowMs()) } : null,
      leaseMs: this.leaseMs,
      grants: this.grants,
      fencedAppends: this.fenced,
      mismatchedAppends: this.mismatches,
    };
  }
}

/**
 * The session clock of the brick's last entry. Below the retained log (after a snapshot install)
 * the latest epoch-start's sclock stands in: it is behind, never ahead, so no session expires early.
 */
function lastSclock(s: BrickStore, storage: StorageTranslator): number {
  const e = s.entry(s.last.rev);
  if (e?.sclock !== undefined) return e.sclock;
  let latest = 0;
  for (const { record } of storage.latestView().scan({ start: EPOCHS_PREFIX, end: prefixEnd(EPOCHS_PREFIX) })) latest = Math.max(latest, decodeNumber(record.value));
  return latest;
}

export const locksClass: TranslatorClass = {
  type: 'features/locks',
  options,
  subvolumes: { min: 1, max: 1 },
  create: (spec) => new LocksTranslator(spec),
};
