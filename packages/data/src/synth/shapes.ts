/**
 * Signed distances in pixels (negative inside) of the shapes cells are made of. Coverage of a
 * pixel is `clamp(0.5 - d, 0, 1)`: a one-pixel anti-aliased edge, and a pixel is "drawn" exactly
 * when `d < 0.5`, which is what makes boxes computable exactly.
 */
export type Sdf = (x: number, y: number) => number;

export function coverage(d: number): number {
  return d <= -0.5 ? 1 : d >= 0.5 ? 0 : 0.5 - d;
}

/** Wobbly ellipse: radius `a`/`b` along its rotated axes, scaled by `1 + sum amp_k cos(k phi + phase_k)`. */
export function blob(
  cx: number,
  cy: number,
  a: number,
  b: number,
  angle: number,
  harmonics: readonly { k: number; amp: number; phase: number }[] = [],
): Sdf {
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const spread = harmonics.reduce((s, h) => s + Math.abs(h.amp), 0);
  const rHi = 1 + spread;
  const rLo = 1 - spread;
  return (x, y) => {
    const dx = x - cx;
    const dy = y - cy;
    const u = (dx * cos + dy * sin) / a;
    const v = (-dx * sin + dy * cos) / b;
    const rho = Math.sqrt(u * u + v * v);
    const d = Math.sqrt(dx * dx + dy * dy);
    if (rho < 1e-9) return -Math.min(a, b);
    // Far outside or deep inside, a bound is as good as the distance (coverage is 0 or 1) and skips atan2/cos.
    const outside = d * (1 - rHi / rho);
    if (outside >= 0.5) return outside;
    const inside = d * (1 - rLo / rho);
    if (inside <= -6) return inside;
    let r = 1;
    if (harmonics.length > 0) {
      const phi = Math.atan2(v, u);
      for (const h of harmonics) r += h.amp * Math.cos(h.k * phi + h.phase);
    }
    // Radial distance to the boundary along the ray from the centre: exact for circles.
    return d * (1 - r / rho);
  };
}

/** Largest radial factor a blob's harmonics can reach (for bounding windows). */
export function maxRadius(harmonics: readonly { amp: number }[]): number {
  return 1 + harmonics.reduce((s, h) => s + Math.abs(h.amp), 0);
}

/**
 * Thick circular arc (a band cell's U/C-shaped nucleus): centre `(cx, cy)`, radius `r`, from
 * angle `start` sweeping `sweep` radians; half-thickness `t` at the middle tapering to `t * tipScale`.
 */
export function arc(
  cx: number,
  cy: number,
  r: number,
  start: number,
  sweep: number,
  t: number,
  tipScale = 0.8,
): Sdf {
  const mid = start + sweep / 2;
  const ex1 = cx + r * Math.cos(start);
  const ey1 = cy + r * Math.sin(start);
  const ex2 = cx + r * Math.cos(start + sweep);
  const ey2 = cy + r * Math.sin(start + sweep);
  return (x, y) => {
    const dx = x - cx;
    const dy = y - cy;
    let phi = Math.atan2(dy, dx) - mid;
    phi = Math.atan2(Math.sin(phi), Math.cos(phi)); // to (-pi, pi]
    if (Math.abs(phi) <= sweep / 2) {
      const along = Math.abs(phi) / (sweep / 2);
      const thick = t * (1 - (1 - tipScale) * along * along);
      return Math.abs(Math.sqrt(dx * dx + dy * dy) - r) - thick;
    }
    const d1 = Math.sqrt((x - ex1) ** 2 + (y - ey1) ** 2);
    const d2 = Math.sqrt((x - ex2) ** 2 + (y - ey2) ** 2);
    return Math.min(d1, d2) - t * tipScale;
  };
}

/** Segment from `(x1, y1)` to `(x2, y2)` with half-thickness `t` (a nuclear filament). */
export function capsule(x1: number, y1: number, x2: number, y2: number, t: number): Sdf {
  const vx = x2 - x1;
  const vy = y2 - y1;
  const len2 = vx * vx + vy * vy || 1;
  return (x, y) => {
    const h = Math.min(Math.max(((x - x1) * vx + (y - y1) * vy) / len2, 0), 1);
    const ex = x - x1 - vx * h;
    const ey = y - y1 - vy * h;
    return Math.sqrt(ex * ex + ey * ey) - t;
  };
}

export function union(parts: readonly Sdf[]): Sdf {
  return (x, y) => {
    let d = Number.POSITIVE_INFINITY;
    for (const p of parts) {
      const v = p(x, y);
      if (v < d) d = v;
    }
    return d;
  };
}
