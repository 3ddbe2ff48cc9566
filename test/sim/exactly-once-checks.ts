// The simulator's exactly-once checks (DESIGN §3 "Exactly-once writes"), checked as entries
// commit, independently of how the product deduplicates (replication/dedupe.ts):
//
// - no write is applied twice. Every put value the clients send is unique to its op (KV clients
//   write `c<id>v<n>`, one value per key of a multi-key txn; session clients `s<id>v<n>`, a new
//   one per request), and a KV client's retries send the same op again with the same origin. So a
//   value put by two different committed entries is one (clientId, seq) applied twice. Deletes
//   carry no value, so a delete applied twice is not seen here: only puts, cas and txns are
//   checked (a repeated delete of an absent key changes nothing; one that deletes another
//   client's later put would show in the linearizability check);
// - a (clientId, seq) is recorded in a dedupe slot (`/_coordvol/d/<clientId>/<seq mod W>`,
//   whose value names the seq) by at most one committed entry: it is recorded by the one entry
//   that applies it, and seqs are never reused. (A slot itself is put again for seq + W.)
//
// The end-of-run side (history-checks.ts checkSettledWrites): a write the history records as
// refused unapplied, or a cas answered "not succeeded", has none of its values committed.
// A violation throws SimViolation at once, so the seed's trace ends there.
import { unpack } from 'msgpackr';
import { RESERVED_PREFIX } from '../../src/common/keys.js';
import { DEDUPE_PREFIX } from '../../replication/sessions.js';
import type { Entry } from '../../store/types.js';
import { SimViolation } from './log-checks.js';

export class ExactlyOnceChecks {
  /** The rev of the committed entry that put each client value. */
  private readonly valueAt = new Map<string, number>();
  /** The rev of the committed entry that put each dedupe record. */
  private readonly recordAt = new Map<string, number>();
  readonly counts = { values: 0, records: 0 };

  constructor(
    /** Which op sent a value (its client and origin), for a violation's message. */
    private readonly sender: (value: string) => string | undefined = () => undefined,
  ) {}

  /** Entry `e` is committed (in rev order). */
  committed(e: Entry): void {
    for (const fx of e.effects) {
      if (fx.t !== 'put') continue;
      if (fx.key.startsWith(DEDUPE_PREFIX)) {
        const seq = (unpack(fx.value) as { seq: number }).seq;
        const id = `${fx.key.slice(0, fx.key.lastIndexOf('/'))} seq ${seq}`;
        const prior = this.recordAt.get(id);
        if (prior !== undefined) throw new SimViolation('applied-twice', `${id} is recorded by committed entries at revs ${prior} and ${e.rev}: one (clientId, seq) was recorded twice`);
        this.recordAt.set(id, e.rev);
        this.counts.records++;
        continue;
      }
      if (fx.key.startsWith(RESERVED_PREFIX)) continue;
      const v = latin1(fx.value);
      const prior = this.valueAt.get(v);
      if (prior === undefined) {
        this.valueAt.set(v, e.rev);
        this.counts.values++;
      } else if (prior !== e.rev) {
        throw new SimViolation('applied-twice', `value ${v} (of ${this.sender(v) ?? 'a session client'}) is put by committed entries at revs ${prior} and ${e.rev} (${fx.key}): one write applied twice`);
      }
    }
  }
}

/** Bytes as a string, one char per byte (values are short): different values stay different. */
function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i] as number);
  return s;
}
