// The benches' text tables: columns as wide as their widest cell, two spaces apart, with a rule
// under the header. Numbers read best right-aligned; the canary table's prose cells left-aligned.

export function textTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align: 'right' | 'left' = 'right',
): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (row: readonly string[]) =>
    row
      .map((cell, c) => (align === 'right' ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}
