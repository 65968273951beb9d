// A small line chart as a standalone SVG document: axes with round-number ticks, one polyline
// (and dots) per series, a legend. Hand-written so the simulation needs no plotting package.

export interface Series {
  label: string;
  /** (x, y) points; non-finite y values are skipped. */
  points: readonly (readonly [number, number])[];
  /** CSS colour; default from a colour-blind-safe palette. */
  color?: string;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  width?: number;
  height?: number;
  /** x is a count (rounds): ticks only at whole numbers. */
  integerX?: boolean;
}

/** Okabe–Ito colours: distinguishable with the common colour-vision deficiencies. */
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9'];
const MARGIN = { left: 64, right: 16, top: 36, bottom: 48 };

export function lineChartSvg(chart: LineChart): string {
  const width = chart.width ?? 640;
  const height = chart.height ?? 400;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const points = chart.series.flatMap((s) => s.points.filter(([x, y]) => finite(x, y)));
  const xs = niceScale(
    points.map(([x]) => x),
    chart.integerX ?? false,
  );
  const ys = niceScale(points.map(([, y]) => y));
  const px = (x: number) => MARGIN.left + ((x - xs.min) / (xs.max - xs.min)) * plotW;
  const py = (y: number) => MARGIN.top + plotH - ((y - ys.min) / (ys.max - ys.min)) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${escape(chart.title)}</text>`,
  );
  // Grid and ticks.
  for (const t of xs.ticks) {
    const x = fmt(px(t));
    out.push(
      `<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotH}" stroke="#eee"/>`,
      `<text x="${x}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${tickLabel(t)}</text>`,
    );
  }
  for (const t of ys.ticks) {
    const y = fmt(py(t));
    out.push(
      `<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotW}" y2="${y}" stroke="#eee"/>`,
      `<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${tickLabel(t)}</text>`,
    );
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${height - 10}" text-anchor="middle">${escape(chart.xLabel)}</text>`,
    `<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(chart.yLabel)}</text>`,
  );
  // Series, then the legend (top right, inside the plot).
  chart.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const coords = s.points
      .filter(([x, y]) => finite(x, y))
      .map(([x, y]) => `${fmt(px(x))},${fmt(py(y))}`);
    out.push(`<g class="series" data-label="${escape(s.label)}">`);
    if (coords.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${coords.join(' ')}"/>`,
      );
    }
    for (const c of coords) {
      const [x, y] = c.split(',');
      out.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
    }
    out.push('</g>');
    const ly = MARGIN.top + 14 + i * 18;
    // Wide enough for the longest label (~6.6 px a character at 12 px sans-serif).
    const longest = Math.max(...chart.series.map((x) => x.label.length));
    const lx = MARGIN.left + plotW - 34 - Math.ceil(6.6 * longest);
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 20}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${lx + 26}" y="${ly}" dominant-baseline="middle">${escape(s.label)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Axis bounds widened to round numbers, with ticks at a 1-2-5 step. */
function niceScale(
  values: number[],
  integer = false,
): { min: number; max: number; ticks: number[] } {
  let min = values.length > 0 ? Math.min(...values) : 0;
  let max = values.length > 0 ? Math.max(...values) : 1;
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.05 : 1;
    min -= pad;
    max += pad;
  }
  const rough = (max - min) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  let step = ([1, 2, 5, 10].find((m) => m * magnitude >= rough) ?? 10) * magnitude;
  if (integer) step = Math.max(1, Math.round(step));
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = lo; t <= hi + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return { min: lo, max: hi, ticks };
}

function finite(x: number, y: number): boolean {
  return Number.isFinite(x) && Number.isFinite(y);
}

function fmt(v: number): string {
  return v.toFixed(1);
}

function tickLabel(v: number): string {
  return String(Number(v.toPrecision(6)));
}

function escape(text: string): string {
  return text.replace(
    /[&<>"]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string,
  );
}
