// A seeded pseudo-random generator (mulberry32): tests and the simulator derive every random
// choice from one seed, so a failure reproduces from its number.
export type Random = () => number;

/** Uniform in [0, 1), deterministic for a given seed. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
