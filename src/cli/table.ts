/**
 * Columns padded to their widest cell (at most `maxWidth`, longer cells cut with "…"), two spaces apart:
 * the table an operator reads in a terminal. `--json` is for machines.
 */
export function formatTable(header: string[], rows: string[][], maxWidth = 60): string {
  const widths = header.map((h, i) => Math.min(maxWidth, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
  const line = (cells: string[]) => cells.map((cell, i) => (cell.length > widths[i]! ? cell.slice(0, widths[i]! - 1) + '…' : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Writes the table, or `empty` when there are no rows. */
export function printTable(header: string[], rows: string[][], empty: string): void {
  process.stdout.write((rows.length === 0 ? empty : formatTable(header, rows)) + '\n');
}
