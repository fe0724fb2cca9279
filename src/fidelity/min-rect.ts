// The smallest rotated rectangle around a set of pixels, as OpenCV's minAreaRect finds it, and the
// mean of a map inside it: what PP-OCR's DB post-processing scores a text region by (get_mini_boxes,
// box_score_fast). Pure arithmetic over pixel centres.

/** A rotated rectangle: centre, unit axis `u` (v is u turned 90 degrees), and its extent along each. */
export interface RotatedRect {
  cx: number;
  cy: number;
  ux: number;
  uy: number;
  /** Extent along u. */
  width: number;
  /** Extent along v = (-uy, ux). */
  height: number;
}

/** The convex hull of points (x, y pairs), counter-clockwise, by Andrew's monotone chain. */
export function convexHull(xs: ArrayLike<number>, ys: ArrayLike<number>): [number, number][] {
  const pts = Array.from({ length: xs.length }, (_, i): [number, number] => [xs[i]!, ys[i]!]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return pts;
  const cross = (o: [number, number], a: [number, number], b: [number, number]): number =>
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: [number, number][] = [];
  for (const p of pts) {
    while (lower.length >= 2 && cross(lower[lower.length - 2]!, lower[lower.length - 1]!, p) <= 0) lower.pop();
    lower.push(p);
  }
  const upper: [number, number][] = [];
  for (let i = pts.length - 1; i >= 0; i--) {
    const p = pts[i]!;
    while (upper.length >= 2 && cross(upper[upper.length - 2]!, upper[upper.length - 1]!, p) <= 0) upper.pop();
    upper.push(p);
  }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

/**
 * The minimum-area rectangle around the points: one of its sides lies along an edge of their
 * convex hull (rotating calipers), so each edge's direction is tried. Fewer than two distinct
 * points: a zero-size rectangle at the point.
 */
export function minAreaRect(xs: ArrayLike<number>, ys: ArrayLike<number>): RotatedRect {
  const hull = convexHull(xs, ys);
  if (hull.length === 0) return { cx: 0, cy: 0, ux: 1, uy: 0, width: 0, height: 0 };
  let best: RotatedRect | undefined;
  let bestArea = Infinity;
  const dirs =
    hull.length === 1 ? [[1, 0]] : hull.map((p, i) => [hull[(i + 1) % hull.length]![0] - p[0], hull[(i + 1) % hull.length]![1] - p[1]]);
  for (const [dx, dy] of dirs) {
    const len = Math.hypot(dx!, dy!);
    if (len === 0) continue;
    const ux = dx! / len,
      uy = dy! / len;
    let u0 = Infinity,
      u1 = -Infinity,
      v0 = Infinity,
      v1 = -Infinity;
    for (const [x, y] of hull) {
      const u = x * ux + y * uy;
      const v = -x * uy + y * ux;
      if (u < u0) u0 = u;
      if (u > u1) u1 = u;
      if (v < v0) v0 = v;
      if (v > v1) v1 = v;
    }
    const area = (u1 - u0) * (v1 - v0);
    // ties (an axis-aligned rectangle's four edges): the first, so the result is deterministic
    if (area < bestArea - 1e-9) {
      bestArea = area;
      const cu = (u0 + u1) / 2,
        cv = (v0 + v1) / 2;
      best = { cx: cu * ux - cv * uy, cy: cu * uy + cv * ux, ux, uy, width: u1 - u0, height: v1 - v0 };
    }
  }
  return best ?? { cx: hull[0]![0], cy: hull[0]![1], ux: 1, uy: 0, width: 0, height: 0 };
}

/** The rectangle's corners (x, y). */
export function corners(r: RotatedRect): [number, number][] {
  const hw = r.width / 2,
    hh = r.height / 2;
  return [
    [-hw, -hh],
    [hw, -hh],
    [hw, hh],
    [-hw, hh],
  ].map(([a, b]): [number, number] => [r.cx + a! * r.ux - b! * r.uy, r.cy + a! * r.uy + b! * r.ux]);
}

/** The rectangle's axis-aligned bounds: its corners' extremes. */
export function rectBounds(r: RotatedRect): { x0: number; y0: number; x1: number; y1: number } {
  const cs = corners(r);
  const xs = cs.map((c) => c[0]),
    ys = cs.map((c) => c[1]);
  return { x0: Math.min(...xs), y0: Math.min(...ys), x1: Math.max(...xs), y1: Math.max(...ys) };
}

/**
 * Mean of an h x w map (from `off`) over the pixels the rectangle covers, as box_score_fast fills
 * the box polygon and averages under it: a pixel counts when its centre lies within half a pixel
 * of the rectangle (a rasterised polygon keeps its edge pixels), so an axis-aligned rectangle
 * through pixel centres covers exactly its rows and columns.
 */
export function meanInRect(map: ArrayLike<number>, off: number, h: number, w: number, r: RotatedRect): number {
  const b = rectBounds(r);
  const xmin = Math.max(0, Math.floor(b.x0 - 0.5));
  const xmax = Math.min(w - 1, Math.ceil(b.x1 + 0.5));
  const ymin = Math.max(0, Math.floor(b.y0 - 0.5));
  const ymax = Math.min(h - 1, Math.ceil(b.y1 + 0.5));
  const hu = r.width / 2 + 0.5 + 1e-9,
    hv = r.height / 2 + 0.5 + 1e-9;
  let sum = 0,
    n = 0;
  for (let y = ymin; y <= ymax; y++)
    for (let x = xmin; x <= xmax; x++) {
      const dx = x - r.cx,
        dy = y - r.cy;
      if (Math.abs(dx * r.ux + dy * r.uy) <= hu && Math.abs(-dx * r.uy + dy * r.ux) <= hv) {
        sum += map[off + y * w + x]!;
        n++;
      }
    }
  return n ? sum / n : 0;
}
