export type Align = 'left' | 'right';

export interface Column {
  readonly title: string;
  readonly align?: Align;
}

/** A GitHub-flavoured markdown table, padded so it also reads well as plain text. */
export function markdownTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const widths = columns.map((c, i) =>
    Math.max(3, c.title.length, ...rows.map((r) => cell(r[i] ?? '').length)),
  );
  const pad = (s: string, i: number) =>
    columns[i].align === 'right' ? s.padStart(widths[i]) : s.padEnd(widths[i]);
  const line = (cells: readonly string[]) =>
    `| ${columns.map((_, i) => pad(cell(cells[i] ?? ''), i)).join(' | ')} |`;
  const rule = `|${columns
    .map((c, i) => (c.align === 'right' ? `${'-'.repeat(widths[i] + 1)}:` : `:${'-'.repeat(widths[i] + 1)}`))
    .join('|')}|`;
  return [line(columns.map((c) => c.title)), rule, ...rows.map(line)].join('\n');
}
