/**
 * A small dependency-free SVG line-chart writer for training curves: one or
 * two y axes (e.g. loss on the left, accuracy on the right), ticks at round
 * numbers, a legend, and gaps where a value is NaN or infinite.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lineChartSvg } from "./plot.ts";
 * const svg = lineChartSvg({
 *   title: "MNIST training",
 *   xLabel: "epoch",
 *   leftLabel: "loss",
 *   rightLabel: "accuracy",
 *   series: [
 *     { name: "train loss", points: [[1, 0.9], [2, 0.4]] },
 *     { name: "test accuracy", points: [[1, 0.8], [2, 0.9]], axis: "right" },
 *   ],
 * });
 * assert.ok(svg.startsWith("<svg") && svg.includes("test accuracy"));
 * // save it with Deno.writeTextFile("training.svg", svg) and open it in a browser
 * ```
 *
 * @module
 */

/**
 * One line on the chart: `[x, y]` points drawn in order, against the left
 * y axis unless `axis` is `"right"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lineChartSvg, type Series } from "./plot.ts";
 * const acc: Series = { name: "accuracy", points: [[0, 0.1], [1, 0.85]], axis: "right" };
 * const svg = lineChartSvg({ title: "accuracy", xLabel: "epoch", series: [acc] });
 * assert.ok(svg.includes("accuracy"));
 * ```
 */
export interface Series {
  /** Legend text. */
  name: string;
  /** Points in drawing order; non-finite coordinates break the line. */
  points: [number, number][];
  /** Which y axis the series is scaled against; `"left"` by default. */
  axis?: "left" | "right";
}

// Colour-blind-safe palette (Okabe–Ito), cycled when there are more series.
const COLORS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];

/** Escapes text for SVG element content and attribute values. */
function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) =>
      c === "&"
        ? "&amp;"
        : c === "<"
        ? "&lt;"
        : c === ">"
        ? "&gt;"
        : c === '"'
        ? "&quot;"
        : "&#39;",
  );
}

/** Pixel coordinates rounded to 0.01 keep files small without visible loss. */
function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

interface Scale {
  lo: number;
  hi: number;
  ticks: number[];
  step: number;
}

/** A tick step of 1, 2 or 5 times a power of ten giving about `target` intervals. */
function niceStep(span: number, target: number): number {
  const raw = span / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * pow;
}

/** A scale covering `values` whose ends sit on ticks; a default one when there is no data. */
function makeScale(values: number[], target: number): Scale {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) [lo, hi] = [0, 1];
  if (lo === hi) {
    // A flat series still needs a visible range around its value.
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, target);
  if (!Number.isFinite(step) || step <= 0) {
    // Spans beyond float range cannot be divided into round steps; show just the ends.
    return { lo, hi, ticks: [lo, hi], step: hi / 2 - lo / 2 };
  }
  const start = Math.floor(lo / step + 1e-9) * step;
  const end = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  const n = Math.round((end - start) / step);
  for (let i = 0; i <= n; i++) ticks.push(start + i * step);
  return { lo: start, hi: end, ticks, step };
}

function formatTick(v: number, step: number): string {
  if (Math.abs(v) < step * 1e-6) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(1);
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/**
 * Renders series as a standalone SVG line chart. Series marked
 * `axis: "right"` get a second y axis on the right. Empty series appear
 * only in the legend, a single point is drawn as a dot, NaN and infinite
 * values are skipped and break the line; all text is XML-escaped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lineChartSvg } from "./plot.ts";
 * const svg = lineChartSvg({
 *   title: "loss",
 *   xLabel: "step",
 *   series: [{ name: "train", points: [[0, 2.3], [100, 0.5], [200, 0.3]] }],
 * });
 * assert.ok(svg.startsWith("<svg"));
 * ```
 */
export function lineChartSvg(
  opts: {
    title: string;
    xLabel: string;
    series: Series[];
    leftLabel?: string;
    rightLabel?: string;
    width?: number;
    height?: number;
  },
): string {
  const width = opts.width ?? 800;
  const height = opts.height ?? 480;
  if (!(width >= 200 && height >= 150 && Number.isFinite(width) && Number.isFinite(height))) {
    throw new RangeError(
      `lineChartSvg "${opts.title}": width and height must be at least 200×150, got ${width}×${height}`,
    );
  }
  const series = opts.series;
  const hasRight = series.some((s) => s.axis === "right");
  const hasLeft = series.some((s) => s.axis !== "right") || !hasRight;

  const xs: number[] = [];
  const leftYs: number[] = [];
  const rightYs: number[] = [];
  for (const s of series) {
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      xs.push(x);
      (s.axis === "right" ? rightYs : leftYs).push(y);
    }
  }

  // The legend sits in rows under the x-axis label, so it never hides a curve.
  const legendRowH = 18;
  const legendItems = series.map((s, i) => {
    const suffix = s.axis === "right" && hasLeft ? " (right)" : "";
    const text = s.name + suffix;
    return {
      text,
      color: COLORS[i % COLORS.length],
      right: s.axis === "right",
      w: 44 + text.length * 7,
    };
  });
  const legendPos: { x: number; row: number }[] = [];
  let rows = 0;
  {
    const avail = width - 40;
    let cx = 0;
    for (const item of legendItems) {
      if (rows === 0 || (cx > 0 && cx + item.w > avail)) {
        rows++;
        cx = 0;
      }
      legendPos.push({ x: cx, row: rows - 1 });
      cx += item.w + 12;
    }
  }
  const margin = {
    top: 40,
    right: hasRight ? 70 : 20,
    bottom: 50 + rows * legendRowH,
    left: 70,
  };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  if (plotH < 40) {
    throw new RangeError(
      `lineChartSvg "${opts.title}": height ${height} leaves no room for the plot and ${series.length} legend entries`,
    );
  }
  const xs_ = makeScale(xs, Math.max(2, Math.round(plotW / 90)));
  const yTarget = Math.max(2, Math.round(plotH / 50));
  const ls = makeScale(leftYs, yTarget);
  const rs = makeScale(rightYs, yTarget);
  // Halving before subtracting keeps the fraction finite even for spans near the float maximum.
  const frac = (s: Scale, v: number) => (v / 2 - s.lo / 2) / (s.hi / 2 - s.lo / 2);
  const X = (x: number) => margin.left + frac(xs_, x) * plotW;
  const Y = (s: Scale, y: number) => margin.top + plotH - frac(s, y) * plotH;
  const x0 = margin.left, x1 = margin.left + plotW, y0 = margin.top, y1 = margin.top + plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<title>${esc(opts.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${px(width / 2)}" y="24" text-anchor="middle" font-size="16">${
      esc(opts.title)
    }</text>`,
  );

  // Grid lines follow the left axis when there is one, else the right.
  const gridScale = hasLeft ? ls : rs;
  out.push(`<g stroke="#e5e5e5" stroke-width="1">`);
  for (const t of gridScale.ticks) {
    out.push(
      `<line x1="${x0}" y1="${px(Y(gridScale, t))}" x2="${x1}" y2="${px(Y(gridScale, t))}"/>`,
    );
  }
  for (const t of xs_.ticks) {
    out.push(`<line x1="${px(X(t))}" y1="${y0}" x2="${px(X(t))}" y2="${y1}"/>`);
  }
  out.push(`</g>`);

  // Axes and ticks.
  out.push(`<g stroke="#333333" stroke-width="1" fill="none">`);
  out.push(`<line x1="${x0}" y1="${y1}" x2="${x1}" y2="${y1}"/>`);
  if (hasLeft) out.push(`<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}"/>`);
  if (hasRight) out.push(`<line x1="${x1}" y1="${y0}" x2="${x1}" y2="${y1}"/>`);
  out.push(`</g>`);
  out.push(`<g fill="#333333">`);
  for (const t of xs_.ticks) {
    out.push(
      `<line x1="${px(X(t))}" y1="${y1}" x2="${px(X(t))}" y2="${y1 + 5}" stroke="#333333"/>` +
        `<text x="${px(X(t))}" y="${y1 + 18}" text-anchor="middle">${
          esc(formatTick(t, xs_.step))
        }</text>`,
    );
  }
  if (hasLeft) {
    for (const t of ls.ticks) {
      const y = px(Y(ls, t));
      out.push(
        `<line x1="${x0 - 5}" y1="${y}" x2="${x0}" y2="${y}" stroke="#333333"/>` +
          `<text x="${x0 - 8}" y="${y}" dy="4" text-anchor="end">${
            esc(formatTick(t, ls.step))
          }</text>`,
      );
    }
  }
  if (hasRight) {
    for (const t of rs.ticks) {
      const y = px(Y(rs, t));
      out.push(
        `<line x1="${x1}" y1="${y}" x2="${x1 + 5}" y2="${y}" stroke="#333333"/>` +
          `<text x="${x1 + 8}" y="${y}" dy="4" text-anchor="start">${
            esc(formatTick(t, rs.step))
          }</text>`,
      );
    }
  }
  out.push(
    `<text x="${px(x0 + plotW / 2)}" y="${y1 + 36}" text-anchor="middle">${
      esc(opts.xLabel)
    }</text>`,
  );
  if (opts.leftLabel && hasLeft) {
    out.push(
      `<text transform="translate(16 ${px(y0 + plotH / 2)}) rotate(-90)" text-anchor="middle">${
        esc(opts.leftLabel)
      }</text>`,
    );
  }
  if (opts.rightLabel && hasRight) {
    out.push(
      `<text transform="translate(${width - 14} ${
        px(y0 + plotH / 2)
      }) rotate(90)" text-anchor="middle">${esc(opts.rightLabel)}</text>`,
    );
  }
  out.push(`</g>`);

  // One path per series; a non-finite point ends a segment, so gaps show as gaps.
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const scale = s.axis === "right" ? rs : ls;
    const dash = s.axis === "right" ? ` stroke-dasharray="6 3"` : "";
    let d = "";
    let penDown = false;
    const lonely: [number, number][] = [];
    let segmentStart: [number, number] | null = null;
    let segmentLen = 0;
    const closeSegment = () => {
      if (segmentLen === 1 && segmentStart) lonely.push(segmentStart);
      segmentLen = 0;
      segmentStart = null;
    };
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) {
        penDown = false;
        closeSegment();
        continue;
      }
      const p: [number, number] = [X(x), Y(scale, y)];
      d += `${penDown ? "L" : "M"}${px(p[0])} ${px(p[1])}`;
      if (!penDown) segmentStart = p;
      penDown = true;
      segmentLen++;
    }
    closeSegment();
    out.push(
      `<path class="series" data-name="${esc(s.name)}" d="${d}" fill="none" stroke="${color}" ` +
        `stroke-width="2" stroke-linejoin="round"${dash}/>`,
    );
    // An isolated point draws no visible line segment, so mark it with a dot.
    for (const [cx, cy] of lonely) {
      out.push(`<circle cx="${px(cx)}" cy="${px(cy)}" r="3" fill="${color}"/>`);
    }
  });

  if (legendItems.length > 0) {
    // Centre the legend rows' common left edge under the plot.
    const rowWidths = new Array(rows).fill(0);
    legendItems.forEach((item, i) => {
      rowWidths[legendPos[i].row] = legendPos[i].x + item.w;
    });
    const left = Math.max(10, (width - Math.max(...rowWidths)) / 2);
    const top = y1 + 40;
    out.push(`<g class="legend">`);
    legendItems.forEach((item, i) => {
      const lx = left + legendPos[i].x;
      const ly = top + 14 + legendPos[i].row * legendRowH;
      const dash = item.right ? ` stroke-dasharray="6 3"` : "";
      out.push(
        `<line x1="${px(lx)}" y1="${ly - 4}" x2="${px(lx + 24)}" y2="${
          ly - 4
        }" stroke="${item.color}" ` +
          `stroke-width="2"${dash}/>` +
          `<text x="${px(lx + 30)}" y="${ly}">${esc(item.text)}</text>`,
      );
    });
    out.push(`</g>`);
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
