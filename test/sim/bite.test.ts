// The checker must be shown to bite (issue 5): each deliberately broken variant of the
// replication code is run over seeds until the simulator reports a violation; a variant that
// survives the bound means the checks (or the fault model) are too weak to trust. A seed counts
// only if it passes without the bug, so a violation the unbroken code also hits proves nothing.
import { describe, expect, it } from 'vitest';
import { BUGS, runSeed, type BugName } from './seeds.js';

const MAX_SEEDS = 400;

describe('the simulator catches broken replication', () => {
  for (const bug of Object.keys(BUGS) as BugName[]) {
    it(`finds a violation with ${bug} within ${MAX_SEEDS} seeds`, () => {
      let found: string | undefined;
      for (let seed = 1; seed <= MAX_SEEDS && found === undefined; seed++) {
        const r = runSeed(seed, { bug });
        // Only a seed that passes without the bug shows the bug was caught.
        if (!r.ok && runSeed(seed).ok) found = `seed ${seed}: ${r.violation?.message}`;
      }
      expect(found, `${bug} went unnoticed for ${MAX_SEEDS} seeds`).toBeDefined();
    }, 240_000);
  }
});
