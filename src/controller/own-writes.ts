// The operator's own status writes come back to it as watch events, and each ran its key once more
// for nothing: the pass found the status it had just written. A burst of 10,000 new forwards cost
// 20,000 passes, the second half queued among the creates (issue 24). The status writer notes the
// resourceVersion of the object each write returned; the watch event with exactly that
// resourceVersion is the echo and runs nothing. What keeps that safe:
// - Only a write whose object is the generation the status reports on is noted (StatusWriter): a
//   spec change merged into the same object (a relist after a 410 delivers one UPDATE for several
//   changes) runs the key.
// - A pass that starts before the echo came forgets the note (passStarts): it read the cache from
//   before the write, so the echo must run the key again, as every echo did before.
// - The caller skips only an event whose object the cache still holds (a deletion runs the key).
// - Any other event of the key, someone else's status edit included, carries another
//   resourceVersion; an echo that arrives before its write's response is not recognised. Both run
//   the key, as before. (A write that changed nothing returns the resourceVersion the object had,
//   maybe of a change the cache has not seen: that event is skipped, which is harmless, since its
//   generation is the one reconciled and its status the one just written.)
// controller-runtime's GenerationChangedPredicate would drop status edits by others too.
export class OwnWrites {
  /** The resourceVersion this operator's latest status write of a key produced, until its echo. */
  private readonly versions = new Map<string, string>();

  wrote(key: string, resourceVersion: string | undefined): void {
    if (resourceVersion) this.versions.set(key, resourceVersion);
    else this.versions.delete(key);
  }

  /**
   * Whether this event of `key` is the echo of the operator's own latest write. Any event of the key
   * ends the wait for it: a later one means the echo came before the write's response (or never will).
   */
  isEcho(key: string, resourceVersion: string | undefined): boolean {
    const wrote = this.versions.get(key);
    if (wrote === undefined) return false;
    this.versions.delete(key);
    return wrote === resourceVersion;
  }

  /** A pass of `key` starts: it reads the cache as it is, so the echo of an earlier write must run. */
  passStarts(key: string): void {
    this.versions.delete(key);
  }

  /** Writes whose echo has not come yet. */
  get size(): number {
    return this.versions.size;
  }
}
