import type { Rng } from '../rng.js';
import { arc, blob, capsule, maxRadius, type Sdf, union } from './shapes.js';

/** Nucleated cell types the generator draws (label index = position here). */
export const CELL_TYPES = ['blast', 'lymphocyte', 'band', 'segmented', 'eosinophil', 'plasma'] as const;
export type CellType = (typeof CELL_TYPES)[number];

/** Optical density per RGB channel (`rgb = exp(-OD)`); densities of stacked layers add. */
export type OD = readonly [number, number, number];

/** A colour as optical density. */
export function od(r: number, g: number, b: number): OD {
  return [-Math.log(r), -Math.log(g), -Math.log(b)];
}

/** Which stain a layer takes up: per-slide stain strength scales it (azure: nuclei and blue cytoplasm). */
export type Stain = 'azure' | 'eosin';

export interface Granule {
  readonly x: number;
  readonly y: number;
  readonly r: number;
}

/** Everything needed to rasterise one cell. */
export interface CellSpec {
  readonly type: CellType;
  readonly cx: number;
  readonly cy: number;
  /** Bounding radius: every drawn pixel lies within `reach + 1` of the centre. */
  readonly reach: number;
  readonly body: Sdf;
  readonly nucleus: Sdf;
  readonly cytoplasm: OD;
  readonly cytoplasmStain: Stain;
  readonly nucleusOD: OD;
  /** Chromatin texture: feature size (px) and contrast (0 = flat). */
  readonly chromatin: { readonly scale: number; readonly contrast: number };
  readonly granules: readonly Granule[];
  readonly granuleOD: OD;
  /** Paler regions inside the nucleus (blast nucleoli). */
  readonly nucleoli?: Sdf;
  /** Paler region of cytoplasm (plasma cell perinuclear hof). */
  readonly halo?: Sdf;
}

const NUCLEUS = od(0.38, 0.24, 0.54);
const COLORS: Record<CellType, { cyto: OD; stain: Stain; nucleusScale: number }> = {
  blast: { cyto: od(0.6, 0.67, 0.86), stain: 'azure', nucleusScale: 0.8 },
  lymphocyte: { cyto: od(0.62, 0.74, 0.92), stain: 'azure', nucleusScale: 1.3 },
  band: { cyto: od(0.86, 0.76, 0.82), stain: 'eosin', nucleusScale: 1.1 },
  segmented: { cyto: od(0.86, 0.76, 0.82), stain: 'eosin', nucleusScale: 1.15 },
  eosinophil: { cyto: od(0.9, 0.78, 0.74), stain: 'eosin', nucleusScale: 1.05 },
  plasma: { cyto: od(0.42, 0.48, 0.76), stain: 'azure', nucleusScale: 1.2 },
};

/**
 * Where each type sits inside the configured diameter range `[0, 1]` (lymphocytes smallest,
 * blasts largest, as in a marrow aspirate).
 */
export const SIZE_RANGE: Record<CellType, readonly [number, number]> = {
  lymphocyte: [0, 0.3],
  band: [0.35, 0.65],
  segmented: [0.4, 0.7],
  eosinophil: [0.45, 0.75],
  plasma: [0.35, 0.7],
  blast: [0.65, 1],
};

function wobble(rng: Rng, amp: number) {
  return [2, 3, 5].map((k) => ({
    k,
    amp: (amp * rng.uniform(0.3, 1)) / (k - 1),
    phase: rng.uniform(0, 2 * Math.PI),
  }));
}

/** Builds a cell of `type` with outer radius about `R` centred at `(cx, cy)`. */
export function makeCell(rng: Rng, type: CellType, cx: number, cy: number, R: number): CellSpec {
  const bodyH = wobble(rng, 0.05);
  const angle = rng.uniform(0, 2 * Math.PI);
  const aspect = type === 'plasma' ? rng.uniform(0.68, 0.8) : rng.uniform(0.88, 1);
  const body = blob(cx, cy, R, R * aspect, angle, bodyH);
  const reach = R * maxRadius(bodyH);
  const c = COLORS[type];
  const nucleusOD = NUCLEUS.map((v) => v * c.nucleusScale * rng.uniform(0.9, 1.1)) as unknown as OD;
  const base = { type, cx, cy, reach, body, cytoplasm: c.cyto, cytoplasmStain: c.stain, nucleusOD };
  const noGranules = { granules: [] as Granule[], granuleOD: [0, 0, 0] as OD };
  const rInner = R * aspect * (1 - 0.05); // the body's smallest radius, roughly

  switch (type) {
    case 'blast': {
      const rn = rInner * rng.uniform(0.74, 0.84);
      const off = rng.uniform(0, 0.06) * R;
      const t = rng.uniform(0, 2 * Math.PI);
      const nx = cx + off * Math.cos(t);
      const ny = cy + off * Math.sin(t);
      const nucleus = blob(nx, ny, rn, rn * rng.uniform(0.9, 1), rng.uniform(0, 6.3), wobble(rng, 0.04));
      const nucleoli = union(
        Array.from({ length: rng.int(1, 3) }, () => {
          const a = rng.uniform(0, 2 * Math.PI);
          const d = rng.uniform(0.1, 0.5) * rn;
          const r = rng.uniform(0.09, 0.14) * rn;
          return blob(nx + d * Math.cos(a), ny + d * Math.sin(a), r, r * 0.85, a);
        }),
      );
      return {
        ...base,
        ...noGranules,
        nucleus,
        nucleoli,
        chromatin: { scale: Math.max(1.5, R / 7), contrast: 0.25 },
      };
    }
    case 'lymphocyte': {
      const rn = rInner * rng.uniform(0.8, 0.88);
      const off = rng.uniform(0.02, 0.1) * R;
      const t = rng.uniform(0, 2 * Math.PI);
      const nucleus = blob(
        cx + off * Math.cos(t),
        cy + off * Math.sin(t),
        rn,
        rn * rng.uniform(0.88, 1),
        t,
        wobble(rng, 0.05),
      );
      return { ...base, ...noGranules, nucleus, chromatin: { scale: Math.max(2, R / 4), contrast: 0.45 } };
    }
    case 'band': {
      // The nucleus is a U/C around the cell centre, so the box centre falls on cytoplasm.
      const sweep = rng.uniform(3.4, 4.7);
      const r = R * rng.uniform(0.46, 0.52);
      const th = R * rng.uniform(0.15, 0.19);
      const nucleus = arc(cx, cy, r, rng.uniform(0, 2 * Math.PI), sweep, th, rng.uniform(0.7, 0.95));
      return { ...base, ...noGranules, nucleus, chromatin: { scale: Math.max(2, R / 5), contrast: 0.35 } };
    }
    case 'segmented':
    case 'eosinophil': {
      const n = type === 'eosinophil' ? rng.int(2, 3) : rng.int(2, 5);
      const lobeR =
        R * (n <= 2 ? rng.uniform(0.24, 0.28) : n === 3 ? rng.uniform(0.21, 0.25) : rng.uniform(0.17, 0.21));
      const ringR = R * (n <= 2 ? rng.uniform(0.3, 0.36) : rng.uniform(0.36, 0.42));
      const span = n <= 2 ? Math.PI : rng.uniform(3.3, 4.8);
      const start = rng.uniform(0, 2 * Math.PI);
      const parts: Sdf[] = [];
      const centres: [number, number][] = [];
      for (let i = 0; i < n; i++) {
        const a = start + (span * i) / (n - 1) + rng.uniform(-0.15, 0.15);
        const x = cx + ringR * Math.cos(a);
        const y = cy + ringR * Math.sin(a);
        centres.push([x, y]);
        const lr = lobeR * rng.uniform(0.9, 1.1);
        parts.push(blob(x, y, lr, lr * rng.uniform(0.75, 0.95), rng.uniform(0, 6.3), wobble(rng, 0.06)));
      }
      for (let i = 1; i < n; i++) {
        const [x1, y1] = centres[i - 1]!;
        const [x2, y2] = centres[i]!;
        parts.push(capsule(x1, y1, x2, y2, Math.max(0.9, R * 0.06)));
      }
      const nucleus = union(parts);
      const chromatin = { scale: Math.max(2, R / 5), contrast: 0.4 };
      if (type === 'segmented') return { ...base, ...noGranules, nucleus, chromatin };
      const gr = Math.max(0.9, R * 0.075);
      const granules: Granule[] = [];
      const count = Math.round((0.55 * (R * R)) / (gr * gr));
      for (let i = 0; i < count * 3 && granules.length < count; i++) {
        const a = rng.uniform(0, 2 * Math.PI);
        const d = Math.sqrt(rng.next()) * (rInner - gr * 1.2);
        const x = cx + d * Math.cos(a);
        const y = cy + d * Math.sin(a);
        if (nucleus(x, y) < gr * 0.5) continue;
        granules.push({ x, y, r: gr * rng.uniform(0.8, 1.15) });
      }
      return { ...base, nucleus, chromatin, granules, granuleOD: od(0.93, 0.56, 0.42) };
    }
    case 'plasma': {
      // Eccentric nucleus at one end of the long axis, a pale hof beside it.
      const rn = R * aspect * rng.uniform(0.62, 0.72);
      const off = R - rn - R * rng.uniform(0.05, 0.1);
      const side = rng.bool() ? 1 : -1;
      const nx = cx + side * off * Math.cos(angle);
      const ny = cy + side * off * Math.sin(angle);
      const nucleus = blob(nx, ny, rn, rn * rng.uniform(0.88, 1), rng.uniform(0, 6.3), wobble(rng, 0.04));
      const hx = nx - side * (rn + R * 0.12) * Math.cos(angle);
      const hy = ny - side * (rn + R * 0.12) * Math.sin(angle);
      const halo = blob(hx, hy, R * 0.22, R * 0.3, angle);
      return {
        ...base,
        ...noGranules,
        nucleus,
        halo,
        chromatin: { scale: Math.max(2, R / 4), contrast: 0.5 },
      };
    }
  }
}
