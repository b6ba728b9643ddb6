import { cpus, loadavg, totalmem } from 'node:os';

/**
 * What a result was measured on. Absolute numbers only mean something next to this; the ratios in
 * each result are what we compare across runs, because this machine is shared and noisy.
 */
export interface Machine {
  cpus: number;
  cpuModel: string;
  node: string;
  platform: string;
  memoryMb: number;
  /** 1-minute load average when the scenario started: a busy machine explains a slow run. */
  loadAverage: number;
  date: string;
}

export function describeMachine(now = new Date()): Machine {
  const list = cpus();
  return {
    cpus: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    memoryMb: Math.round(totalmem() / 2 ** 20),
    loadAverage: Math.round(loadavg()[0]! * 100) / 100,
    date: now.toISOString(),
  };
}
