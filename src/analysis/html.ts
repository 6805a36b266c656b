// The single-file HTML report of a comparison: tables, method, inputs and the plots as inline SVG.
// No external scripts, stylesheets or fonts, so it opens offline. Pure string building; the CLI
// writes the file. Not a general templating helper.
import { formatCell, legendLines, tableChunks, type Comparison } from "./compare.js";
import { passkGrid, type PasskRow } from "./passk-curve.js";

export const escapeHtml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** An SVG document made embeddable: XML prolog and doctype removed. */
export function inlineSvg(svg: string): string {
  return svg
    .replace(/<\?xml[^>]*\?>\s*/g, "")
    .replace(/<!DOCTYPE[^>]*>\s*/gi, "")
    .trim();
}

export function comparisonTablesHtml(cmp: Comparison): string {
  const parts: string[] = [];
  for (const chunk of tableChunks(cmp, 200)) {
    const head = `<tr><th>run</th>${chunk.metrics.map((m) => `<th title="${escapeHtml(m.description)}">${escapeHtml(m.header)}</th>`).join("")}</tr>`;
    const body = cmp.rows
      .map(
        (r) =>
          `<tr class="${r.kind}"><td>${escapeHtml(r.label)}</td>${chunk.metrics.map((m) => `<td>${escapeHtml(formatCell(r.cells[m.key], m, r.kind))}</td>`).join("")}</tr>`,
      )
      .join("\n");
    parts.push(
      `<h3>${escapeHtml(chunk.group)}</h3>\n<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`,
    );
  }
  return parts.join("\n");
}

export interface Figure {
  title: string;
  svg: string;
  /** the PNG file name next to the report, if one was written */
  png?: string;
}

const STYLE = `
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1.5em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; cursor: help; }
tr.mean td { font-weight: bold; background: #f7f9fc; }
figure { margin: 1.5em 0; } figcaption { font-size: 0.9em; color: #555; }
figure svg { max-width: 100%; height: auto; }
code { font-size: 0.9em; } .note { color: #555; font-size: 0.9em; }
`;

/** The whole report as one HTML document. */
export function reportHtml(opts: {
  title: string;
  cmp: Comparison;
  figures: Figure[];
  passkTables?: string;
  notes?: string[];
}): string {
  const { cmp } = opts;
  const experiments = [...new Set(cmp.runs.map((r) => r.experiment))];
  const runs = cmp.runs
    .map(
      (r) =>
        `<li>${escapeHtml(r.label)}: <code>${escapeHtml(r.file)}</code> (saturation threshold ${r.threshold}, window ${r.window})</li>`,
    )
    .join("\n");
  const figures = opts.figures
    .map(
      (f) =>
        `<figure>\n${inlineSvg(f.svg)}\n<figcaption>${escapeHtml(f.title)}${f.png ? ` — PNG: <code>${escapeHtml(f.png)}</code>` : ""}</figcaption>\n</figure>`,
    )
    .join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(opts.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(opts.title)}</h1>
<p>${cmp.runs.length} run(s) in ${experiments.length} experiment(s): ${experiments.map(escapeHtml).join(", ")}.</p>
<p class="note"><b>Aggregates.</b> ${escapeHtml(cmp.method)}</p>
${cmp.dropped.length ? `<p class="note">Compared on the ${cmp.shared.length} columns all runs share; left out: ${cmp.dropped.map((c) => `<code>${escapeHtml(c)}</code>`).join(", ")}.</p>` : ""}
${(opts.notes ?? []).map((n) => `<p class="note">${escapeHtml(n)}</p>`).join("\n")}
<h2>Tables</h2>
${comparisonTablesHtml(cmp)}
<h3>Columns</h3>
<ul class="note">${legendLines(cmp)
    .map((l) => `<li>${escapeHtml(l)}</li>`)
    .join("")}</ul>
${opts.passkTables ?? ""}
<h2>Plots</h2>
${figures}
<h2>Inputs</h2>
<ul class="note">
${runs}
</ul>
</body>
</html>
`;
}

/** pass@k rows as an HTML table (rows: benchmark × checkpoint, columns: k). */
export function passkTableHtml(rows: readonly PasskRow[], caption: string): string {
  const { ks, lines } = passkGrid(rows);
  const head = `<tr><th>benchmark</th><th>checkpoint</th>${ks.map((k) => `<th>k=${k}</th>`).join("")}</tr>`;
  const body = lines
    .map(
      (l) =>
        `<tr><td>${escapeHtml(l.benchmark)}</td><td style="text-align:left">${escapeHtml(l.label)}</td>${l.values.map((v) => `<td>${v === null ? "-" : v.toFixed(3)}</td>`).join("")}</tr>`,
    )
    .join("\n");
  return `<h3>${escapeHtml(caption)}</h3>\n<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}
