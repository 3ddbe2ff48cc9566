// Shared test helpers.
import { isCoordError } from '../../src/common/errors.js';

/** The typed error a promise is refused with; fails the test if it resolves or throws anything else. */
export async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isCoordError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal, got success');
}
