// A plain SVG line chart (loss per step, ε spent per round): a few series on shared axes, with
// an optional horizontal limit line (the ε budget). No chart library: two axes and a path.
export interface Series {
  name: string;
  points: { x: number; y: number }[];
  className: string;
}

export function LineChart(props: {
  series: Series[];
  limit?: { y: number; label: string };
  xLabel: string;
  yLabel: string;
  title: string;
}) {
  const width = 480;
  const height = 200;
  const pad = { left: 48, right: 12, top: 12, bottom: 32 };
  const all = props.series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y).concat(props.limit ? [props.limit.y, 0] : []);
  const xMin = Math.min(...xs, 0);
  const xMax = Math.max(...xs, xMin + 1);
  const yMin = Math.min(...ys);
  const yMaxRaw = Math.max(...ys);
  const yMax = yMaxRaw > yMin ? yMaxRaw : yMin + 1;
  const sx = (x: number) =>
    pad.left + ((x - xMin) / (xMax - xMin)) * (width - pad.left - pad.right);
  const sy = (y: number) =>
    pad.top + (1 - (y - yMin) / (yMax - yMin)) * (height - pad.top - pad.bottom);
  const ticks = [yMin, (yMin + yMax) / 2, yMax];
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={props.title}>
        <line className="axis" x1={pad.left} y1={sy(yMin)} x2={width - pad.right} y2={sy(yMin)} />
        <line className="axis" x1={pad.left} y1={pad.top} x2={pad.left} y2={height - pad.bottom} />
        {ticks.map((t) => (
          <text key={t} className="tick" x={pad.left - 6} y={sy(t) + 4} textAnchor="end">
            {Number(t.toPrecision(3))}
          </text>
        ))}
        <text className="tick" x={pad.left} y={height - 8}>
          {xMin}
        </text>
        <text className="tick" x={width - pad.right} y={height - 8} textAnchor="end">
          {xMax}
        </text>
        <text className="axis-label" x={(width + pad.left) / 2} y={height - 8} textAnchor="middle">
          {props.xLabel}
        </text>
        {props.limit ? (
          <g>
            <line
              className="limit"
              x1={pad.left}
              x2={width - pad.right}
              y1={sy(props.limit.y)}
              y2={sy(props.limit.y)}
            />
            <text className="tick" x={width - pad.right} y={sy(props.limit.y) - 4} textAnchor="end">
              {props.limit.label}
            </text>
          </g>
        ) : null}
        {props.series.map((s) =>
          s.points.length ? (
            <polyline
              key={s.name}
              className={`series ${s.className}`}
              points={s.points.map((p) => `${sx(p.x)},${sy(p.y)}`).join(' ')}
            />
          ) : null,
        )}
      </svg>
      <figcaption>
        {props.title} — {props.yLabel} by {props.xLabel}
      </figcaption>
    </figure>
  );
}
