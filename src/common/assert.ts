// Assertions are for programmer errors: a broken invariant stops the process loudly (TigerBeetle
// style). Operating errors (bad input, lost quorum) are CoordErrors instead, see errors.ts.
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new AssertionError(`invariant violated: ${message}`);
}

export function unreachable(x: never, what: string): never {
  throw new AssertionError(`unreachable: unexpected ${what}: ${JSON.stringify(x)}`);
}
