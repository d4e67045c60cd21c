// What the benches read of a process from /proc: CPU time, I/O calls and memory. Linux only, as the
// benches are; a process that is gone reads as NaN.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

let clkTck: number | undefined;

/** Clock ticks per second of /proc's CPU counters (`getconf CLK_TCK`, 100 where that fails). */
function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** User + system CPU seconds of a process (all its threads) so far: /proc/PID/stat utime + stime. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks(); // fields 14 and 15 of stat
  } catch {
    return NaN;
  }
}

/** A process's I/O counters, all its threads (/proc/PID/io): read and write calls, and their bytes. */
export interface IoCounters {
  /** read(2)-like calls (read, readv, recvmsg...) and the bytes they returned. */
  reads: number;
  readBytes: number;
  /** write(2)-like calls (write, writev, sendmsg...) and the bytes they wrote. */
  writes: number;
  writeBytes: number;
}

export function ioCounters(pids: readonly number[]): IoCounters {
  const sum: IoCounters = { reads: 0, readBytes: 0, writes: 0, writeBytes: 0 };
  for (const pid of pids) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    } catch {
      return { reads: NaN, readBytes: NaN, writes: NaN, writeBytes: NaN };
    }
    const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1]);
    sum.reads += field('syscr');
    sum.readBytes += field('rchar');
    sum.writes += field('syscw');
    sum.writeBytes += field('wchar');
  }
  return sum;
}

/** Resident and peak resident memory (MiB) and thread count of a process: /proc/PID/status. */
export function procStatus(pid: number): { rssMiB: number; hwmMiB: number; threads: number } {
  let s: string;
  try {
    s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { rssMiB: NaN, hwmMiB: NaN, threads: NaN };
  }
  const v = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rssMiB: v('VmRSS') / 1024, hwmMiB: v('VmHWM') / 1024, threads: v('Threads') };
}
