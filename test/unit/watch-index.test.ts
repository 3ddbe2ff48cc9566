// The watch prefix index against a brute-force scan: random ranges (keys, prefixes, [start, end),
// open ends, non-ASCII) added and removed, random keys matched.
import { describe, expect, it } from 'vitest';
import { compareKeys, prefixEnd } from '../../src/common/keys.js';
import { seededRandom } from '../../src/common/random.js';
import type { KeyRange } from '../../store/types.js';
import { inRange, RangeIndex } from '../../translators/features/watch-index.js';

interface W {
  readonly id: number;
  readonly range: KeyRange;
  readonly exactKey: string | undefined;
}

const ALPHABET = ['a', 'b', '/', 'é', '😀', 'z'];

describe('watch prefix index', () => {
  it('matches exactly the ranges that hold a key, as watchers come and go', () => {
    const rnd = seededRandom(42);
    const word = (max: number): string => Array.from({ length: Math.floor(rnd() * max) }, () => ALPHABET[Math.floor(rnd() * ALPHABET.length)]).join('');
    const index = new RangeIndex<W>();
    const all = new Map<number, W>();
    let id = 0;
    for (let round = 0; round < 3000; round++) {
      const roll = rnd();
      if (roll < 0.45 || all.size === 0) {
        const kind = rnd();
        let w: W;
        if (kind < 0.3) {
          const k = '/' + word(5);
          w = { id: ++id, range: { start: k, end: k + '\u0001' }, exactKey: k };
        } else if (kind < 0.7) {
          const p = word(5);
          w = { id: ++id, range: { start: p, end: p === '' ? undefined : prefixEnd(p) }, exactKey: undefined };
        } else {
          const [x, y] = [word(6), word(6)].sort(compareKeys) as [string, string];
          w = { id: ++id, range: { start: x, end: rnd() < 0.2 || x === y ? undefined : y }, exactKey: undefined };
        }
        all.set(w.id, w);
        index.add(w);
      } else if (roll < 0.6) {
        const victim = [...all.values()][Math.floor(rnd() * all.size)] as W;
        all.delete(victim.id);
        index.remove(victim);
        index.remove(victim); // twice: a no-op
      } else {
        const key = '/' + word(7);
        const probe = rnd() < 0.5 ? key : key.slice(1);
        const want = [...all.values()].filter((w) => inRange(probe, w.range)).map((w) => w.id).sort((a, b) => a - b);
        const got = [...index.match(probe)].map((w) => w.id).sort((a, b) => a - b);
        expect(got, `key ${JSON.stringify(probe)}`).toEqual(want);
      }
      expect(index.size).toBe(all.size);
    }
  });
});
