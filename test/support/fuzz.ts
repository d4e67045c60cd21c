// Seeded randomness for the fuzzers: every run prints its seed, and FUZZ_SEED=<seed> replays it.
// FUZZ_CASES scales every fuzzer (make test runs the defaults, make test-reliability 20,000 each).

export class Random {
  private s: number;

  constructor(readonly seed: number) {
    this.s = seed >>> 0 || 1;
  }

  /** mulberry32: small, fast, good enough to pick test inputs. */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }

  /** `buf` damaged one of several ways: bits flipped, cut short, bytes inserted, or a run overwritten. */
  mutate(buf: Buffer): Buffer {
    const b = Buffer.from(buf);
    switch (this.int(0, 3)) {
      case 0:
        for (let i = this.int(1, 4); i > 0 && b.length; i--)
          b[this.int(0, b.length - 1)] ^= 1 << this.int(0, 7);
        return b;
      case 1:
        return b.subarray(0, this.int(0, Math.max(0, b.length - 1)));
      case 2: {
        const at = this.int(0, b.length);
        return Buffer.concat([b.subarray(0, at), this.bytes(this.int(1, 16)), b.subarray(at)]);
      }
      default: {
        if (b.length === 0) return this.bytes(this.int(1, 16));
        const at = this.int(0, b.length - 1);
        this.bytes(Math.min(b.length - at, this.int(1, 8))).copy(b, at);
        return b;
      }
    }
  }

  /** `buf` cut into random pieces (a TCP stream delivers any split). */
  chunks(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    for (let at = 0; at < buf.length;) {
      const n = this.int(1, Math.max(1, Math.min(buf.length - at, this.bool(0.3) ? 3 : 4096)));
      out.push(buf.subarray(at, at + n));
      at += n;
    }
    return out;
  }
}

/** The seed of this run: FUZZ_SEED, else a new one. */
export function fuzzSeed(): number {
  const fixed = process.env.FUZZ_SEED;
  return fixed ? Number(fixed) >>> 0 : Math.floor(Math.random() * 2 ** 32);
}

/** How many cases a fuzzer runs: FUZZ_CASES when set, else `dflt`. */
export function fuzzCases(dflt: number): number {
  const n = Number(process.env.FUZZ_CASES);
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

/** The line a fuzzer prints when done (docs/reliability.md quotes these). */
export function fuzzReport(what: string, cases: number, seed: number, extra = ''): void {
  console.log(
    `      [figure] fuzz ${what}: ${cases} cases, no crash, no hang (seed ${seed}${extra ? `; ${extra}` : ''})`,
  );
}
