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
// - a dedupe record `/_coordvol/dedupe/<clientId>/<seq>` is put by at most one committed entry:
//   a (clientId, seq) is recorded by the one entry that applies it, and seqs are never reused.
//
// The end-of-run side (history-checks.ts checkSettledWrites): a write the history records as
// refused unapplied, or a cas answered "not succeeded", has none of its values committed.
// A violation throws SimViolation at once, so the seed's trace ends there.
import { Buffer } from 'node:buffer';
import { RESERVED_PREFIX } from '../../src/common/keys.js';
import { DEDUPE_PREFIX } from '../../replication/sessions.js';
import type { Entry } from '../../store/types.js';
import { SimViolation } from './log-checks.js';

export class ExactlyOnceChecks {
  /** The rev of the committed entry that put each client value. */
  private readonly valueAt = new Map<string, number>();
  /** The rev of the committed entry that put each dedupe record. */
  private readonly recordAt = new Map<string, number>();
  /** Who sent each KV client value: its client and origin, for a violation's message. */
  private readonly sender = new Map<string, string>();
  readonly counts = { values: 0, records: 0 };

  /** A KV client's write carries these values, from (client, clientId, seq). */
  sent(values: readonly string[], who: string): void {
    for (const v of values) this.sender.set(v, who);
  }

  /** Entry `e` is committed (in rev order). */
  committed(e: Entry): void {
    for (const fx of e.effects) {
      if (fx.t !== 'put') continue;
      if (fx.key.startsWith(DEDUPE_PREFIX)) {
        const prior = this.recordAt.get(fx.key);
        if (prior !== undefined) throw new SimViolation('applied-twice', `the dedupe record ${fx.key} is put by committed entries at revs ${prior} and ${e.rev}: one (clientId, seq) was recorded twice`);
        this.recordAt.set(fx.key, e.rev);
        this.counts.records++;
        continue;
      }
      if (fx.key.startsWith(RESERVED_PREFIX)) continue;
      const v = Buffer.from(fx.value).toString();
      const prior = this.valueAt.get(v);
      if (prior === undefined) {
        this.valueAt.set(v, e.rev);
        this.counts.values++;
      } else if (prior !== e.rev) {
        throw new SimViolation('applied-twice', `value ${v} (of ${this.sender.get(v) ?? 'a session client'}) is put by committed entries at revs ${prior} and ${e.rev} (${fx.key}): one write applied twice`);
      }
    }
  }
}
