// Branded ids: a Rev is not an Epoch is not a SessionId, even though all are numbers on the wire.
declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Index of an entry in the replicated log; every key records createRev and modRev. */
export type Rev = Brand<number, 'Rev'>;
/** Grows with each new holder; bricks fence requests of an older epoch. */
export type Epoch = Brand<number, 'Epoch'>;
/** A session's id: the rev of the entry that opened it (0 = not ephemeral). */
export type SessionId = Brand<number, 'SessionId'>;
/** Fixed when a brick is created: hash(volumeId, host:path). */
export type BrickId = Brand<string, 'BrickId'>;
/** Hash of the volume's initial config entry. */
export type VolumeId = Brand<string, 'VolumeId'>;

export const asRev = (n: number): Rev => n as Rev;
export const asEpoch = (n: number): Epoch => n as Epoch;
export const asSessionId = (n: number): SessionId => n as SessionId;
export const asBrickId = (s: string): BrickId => s as BrickId;
export const asVolumeId = (s: string): VolumeId => s as VolumeId;

export const REV_ZERO = asRev(0);
export const EPOCH_ZERO = asEpoch(0);
export const NO_SESSION = asSessionId(0);
