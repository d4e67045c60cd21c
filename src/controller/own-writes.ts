// The operator's own status writes come back to it as watch events, and each ran its key once more
// for nothing: the pass found the status it had just written. A burst of 10,000 new forwards cost
// 20,000 passes, the second half queued among the creates (issue 24). The status writer notes the
// resourceVersion of the object each write returned; the watch event with exactly that
// resourceVersion is the echo and runs nothing. Any other event of the key, someone else's status
// edit included, carries another resourceVersion and runs the key as before. An echo that arrives
// before its write's response is not recognised and runs the key, as every echo did before.
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

  /** Writes whose echo has not come yet. */
  get size(): number {
    return this.versions.size;
  }
}
