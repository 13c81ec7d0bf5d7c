import { addGaussianNoise, gaussianBlur, hedMatrix } from '../color.js';
import type { ImageHWC } from '../image-io.js';
import { mixSeed, Rng } from '../rng.js';
import { CELL_TYPES, type CellSpec, type CellType, makeCell, type OD, od, SIZE_RANGE } from './cells.js';
import { fbm, hash2 } from './noise.js';
import { blob, coverage } from './shapes.js';

export interface SmearOptions {
  /** Image width and height in pixels. Default 320 x 320. */
  readonly width?: number;
  readonly height?: number;
  /** Nucleated cell diameter range in pixels; each type takes its own part of it. Default `[22, 56]`. */
  readonly cellSize?: readonly [number, number];
  /** Fraction of the field covered by nucleated cells, 0..1 (the density knob). Default 0.3. */
  readonly density?: number;
  /** How far two nucleated cells may overlap, as a fraction of the sum of radii. 0 = at most touching. Default 0.15. */
  readonly overlap?: number;
  /** Fraction of the field covered by red cells (unlabelled clutter). Default 0.35. */
  readonly rbcDensity?: number;
  /** Relative frequency of each type. Default: blasts, lymphocytes, bands, segmented, eosinophils, plasma cells mixed. */
  readonly typeWeights?: Partial<Record<CellType, number>>;
  /** Consecutive images sharing one stain "batch" (slide): same colour shift. Default 8. */
  readonly slideSize?: number;
  /** Strength of per-slide stain colour shifts; 0 turns them off. Default 1. */
  readonly stainShift?: number;
  /** Gaussian blur sigma range (px) per image. Default `[0, 0.8]`. */
  readonly blur?: readonly [number, number];
  /** Additive noise sigma range per image (intensity 0..1). Default `[0.004, 0.015]`. */
  readonly noise?: readonly [number, number];
  /** Let cells cross the image border (box = visible part; cells under half visible are not drawn). Default false. */
  readonly edgeCells?: boolean;
  /** Also box red cells (label `CELL_TYPES.length`). Default false. */
  readonly labelRbc?: boolean;
  /** Return each cell's drawn-pixel mask and nucleus mask (for tests and debugging). */
  readonly debugMasks?: boolean;
}

/** A boolean mask over `[y0, y0 + height) x [x0, x0 + width)` of the image, row-major. */
export interface CellMask {
  readonly x0: number;
  readonly y0: number;
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

export interface SmearSample {
  readonly image: ImageHWC;
  /** `[N, 4]` xyxy pixels: the tight box of each labelled cell's drawn pixels. */
  readonly boxes: Float32Array;
  /** `[N]` index into `CELL_TYPES` (or `CELL_TYPES.length` for boxed red cells). */
  readonly labels: Int32Array;
  /** Pixels each cell drew (present with `debugMasks`). */
  readonly masks?: CellMask[];
  /** Nucleus pixels of each cell (present with `debugMasks`). */
  readonly nucleusMasks?: CellMask[];
}

const DEFAULT_WEIGHTS: Record<CellType, number> = {
  blast: 0.2,
  lymphocyte: 0.18,
  band: 0.16,
  segmented: 0.2,
  eosinophil: 0.1,
  plasma: 0.16,
};

const BACKGROUND = od(0.95, 0.93, 0.94);
const RBC = od(0.91, 0.66, 0.64);

interface SlideStain {
  azure: number;
  eosin: number;
  hedAlpha: number[];
  hedBeta: number[];
  background: OD;
}

/** Background density: overall thickness varies by slide, its tint only a little. */
function backgroundTint(rng: Rng, s: number): OD {
  const thickness = 1 + s * rng.uniform(-0.3, 0.5);
  return BACKGROUND.map((v) => v * thickness * (1 + s * rng.uniform(-0.12, 0.12))) as unknown as OD;
}

function slideStain(seed: number, slide: number, strength: number): SlideStain {
  const rng = new Rng(mixSeed(seed, slide, 0x51de));
  const s = strength;
  return {
    azure: 1 + s * rng.uniform(-0.25, 0.3),
    eosin: 1 + s * rng.uniform(-0.3, 0.3),
    hedAlpha: [0, 1, 2].map(() => 1 + s * rng.uniform(-0.08, 0.08)),
    hedBeta: [0, 1, 2].map(() => s * rng.uniform(-0.02, 0.02)),
    background: backgroundTint(rng, s),
  };
}

/**
 * Draws smear field `index` of the stream `seed` (random access: any index, any order, same
 * pixels). Cells are rasterised from signed-distance shapes into optical density, red cells
 * first, then nucleated cells (later ones on top, translucent as in a thin smear); then the
 * slide's stain shift, blur and noise.
 */
export function generateSmear(seed: number, index: number, opts: SmearOptions = {}): SmearSample {
  const W = opts.width ?? 320;
  const H = opts.height ?? 320;
  const [dMin, dMax] = opts.cellSize ?? [22, 56];
  if (!(dMin > 2 && dMax >= dMin))
    throw new RangeError(`cellSize must be [min, max] with 2 < min <= max, got [${dMin}, ${dMax}]`);
  const rng = new Rng(mixSeed(seed, index));
  const stain = slideStain(seed, Math.floor(index / (opts.slideSize ?? 8)), opts.stainShift ?? 1);
  const odImg = new Float32Array(W * H * 3);
  const bgSeed = rng.nextUint32();
  paintBackground(odImg, W, H, stain.background, bgSeed);

  // Nucleated cells: rejection-sampled positions so overlap stays under the knob.
  const weights = { ...DEFAULT_WEIGHTS, ...opts.typeWeights };
  const types = CELL_TYPES.filter((t) => (weights[t] ?? 0) > 0);
  const totalW = types.reduce((s, t) => s + weights[t]!, 0);
  const pickType = (): CellType => {
    let u = rng.next() * totalW;
    for (const t of types) if ((u -= weights[t]!) < 0) return t;
    return types[types.length - 1]!;
  };
  const meanD = (dMin + dMax) / 2;
  const density = opts.density ?? 0.3;
  const target = Math.round(((density * W * H) / (Math.PI * (meanD / 2) ** 2)) * rng.uniform(0.8, 1.2));
  const overlap = opts.overlap ?? 0.15;
  const placed: { x: number; y: number; r: number; type: CellType }[] = [];
  for (let tries = 0; placed.length < target && tries < target * 40; tries++) {
    const type = pickType();
    const [lo, hi] = SIZE_RANGE[type];
    const r = (dMin + (dMax - dMin) * rng.uniform(lo, hi)) / 2;
    const margin = opts.edgeCells ? -r * 0.4 : r * 1.1 + 1;
    if (W - 2 * margin <= 0 || H - 2 * margin <= 0) continue;
    const x = rng.uniform(margin, W - margin);
    const y = rng.uniform(margin, H - margin);
    if (placed.some((p) => Math.sqrt((p.x - x) ** 2 + (p.y - y) ** 2) < (p.r + r) * (1 - overlap))) continue;
    placed.push({ x, y, r, type });
  }

  // Red cells, under everything, kept off nucleated cell centres so nuclei stay readable.
  const rbcDensity = opts.rbcDensity ?? 0.35;
  const rbcD = meanD * 0.55;
  const rbcCount = Math.round((rbcDensity * W * H) / (Math.PI * (rbcD / 2) ** 2));
  const rbcBoxes: number[] = [];
  const rbcMasks: CellMask[] = [];
  for (let i = 0, tries = 0; i < rbcCount && tries < rbcCount * 10; tries++) {
    const r = (rbcD / 2) * rng.uniform(0.85, 1.15);
    const x = rng.uniform(-r * 0.5, W + r * 0.5);
    const y = rng.uniform(-r * 0.5, H + r * 0.5);
    if (placed.some((p) => Math.sqrt((p.x - x) ** 2 + (p.y - y) ** 2) < p.r * 0.9)) continue;
    i++;
    const res = drawRbc(odImg, W, H, rng, x, y, r, stain, opts.labelRbc === true);
    if (res && opts.labelRbc) {
      rbcBoxes.push(...res.box);
      rbcMasks.push(res.mask);
    }
  }

  const boxes: number[] = [...rbcBoxes];
  const labels: number[] = rbcBoxes.length ? new Array(rbcBoxes.length / 4).fill(CELL_TYPES.length) : [];
  const masks: CellMask[] = [...rbcMasks];
  const nucleusMasks: CellMask[] = rbcMasks.map((m) => ({ ...m, data: new Uint8Array(m.data.length) }));
  let cellCount = 0;
  for (const p of placed) {
    // Rebuild a cell whose box centre would land on its nucleus (only band cells could).
    for (let attempt = 0; attempt < 5; attempt++) {
      const cell = makeCell(rng, p.type, p.x, p.y, p.r);
      const drawn = rasterCell(cell, W, H);
      if (!drawn) break;
      if (opts.edgeCells && drawn.visibleFraction < 0.5) break;
      if (cell.type === 'band' && attempt < 4 && centreOnNucleus(drawn)) continue;
      // Each nucleated cell gets its own texture stream, whatever else is labelled or recorded.
      composite(odImg, W, cell, drawn, stain, bgSeed + 1 + 7919 * ++cellCount);
      boxes.push(...drawn.box);
      labels.push(CELL_TYPES.indexOf(cell.type));
      if (opts.debugMasks) {
        masks.push(drawn.mask);
        nucleusMasks.push(drawn.nucleusMask);
      }
      break;
    }
  }

  // The slide's stain shift is affine in optical density, where the field already is.
  let image: ImageHWC = { data: odToRgb(odImg, stain.hedAlpha, stain.hedBeta), width: W, height: H };
  const [b0, b1] = opts.blur ?? [0, 0.8];
  const sigma = rng.uniform(b0, b1);
  if (sigma > 0.05) image = gaussianBlur(image, sigma);
  const [n0, n1] = opts.noise ?? [0.004, 0.015];
  const ns = rng.uniform(n0, n1);
  if (ns > 0) addGaussianNoise(rng, image.data, ns);
  return {
    image,
    boxes: Float32Array.from(boxes),
    labels: Int32Array.from(labels),
    ...(opts.debugMasks ? { masks, nucleusMasks } : {}),
  };
}

/**
 * Background density with slow thickness variation: `valueNoise(x, y, 40, seed)` evaluated from
 * a precomputed lattice (the same arithmetic, so the same values, without four hashes per pixel).
 */
function paintBackground(odImg: Float32Array, W: number, H: number, bg: OD, seed: number): void {
  const scale = 40;
  const gw = Math.floor((W - 1) / scale) + 2;
  const gh = Math.floor((H - 1) / scale) + 2;
  const lattice = new Float64Array(gw * gh);
  for (let j = 0; j < gh; j++) for (let i = 0; i < gw; i++) lattice[j * gw + i] = hash2(i, j, seed);
  for (let y = 0; y < H; y++) {
    const fy = y / scale;
    const iy = Math.floor(fy);
    const ty = fy - iy;
    const sy = ty * ty * (3 - 2 * ty);
    for (let x = 0; x < W; x++) {
      const fx = x / scale;
      const ix = Math.floor(fx);
      const tx = fx - ix;
      const sx = tx * tx * (3 - 2 * tx);
      const a = lattice[iy * gw + ix]!;
      const b = lattice[iy * gw + ix + 1]!;
      const c = lattice[(iy + 1) * gw + ix]!;
      const d = lattice[(iy + 1) * gw + ix + 1]!;
      const v = 0.75 + 0.5 * (a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy);
      const o = (y * W + x) * 3;
      odImg[o] = bg[0] * v;
      odImg[o + 1] = bg[1] * v;
      odImg[o + 2] = bg[2] * v;
    }
  }
}

function odToRgb(odImg: Float32Array, alpha: readonly number[], beta: readonly number[]): Float32Array {
  const { T, off } = hedMatrix(alpha, beta);
  const [t00, t01, t02] = T[0]!;
  const [t10, t11, t12] = T[1]!;
  const [t20, t21, t22] = T[2]!;
  const [o0, o1, o2] = off;
  const out = new Float32Array(odImg.length);
  for (let i = 0; i < out.length; i += 3) {
    const r = odImg[i]!;
    const g = odImg[i + 1]!;
    const b = odImg[i + 2]!;
    out[i] = Math.min(1, Math.exp(-(r * t00! + g * t10! + b * t20! + o0!)));
    out[i + 1] = Math.min(1, Math.exp(-(r * t01! + g * t11! + b * t21! + o1!)));
    out[i + 2] = Math.min(1, Math.exp(-(r * t02! + g * t12! + b * t22! + o2!)));
  }
  return out;
}

interface Drawn {
  /** Coverage of the cell body per pixel of the window, and nucleus coverage within it. */
  readonly x0: number;
  readonly y0: number;
  readonly w: number;
  readonly h: number;
  readonly body: Float32Array;
  /** Signed distance to the body outline (px), for the membrane rim. */
  readonly bodySd: Float32Array;
  readonly nuc: Float32Array;
  readonly box: [number, number, number, number];
  readonly mask: CellMask;
  readonly nucleusMask: CellMask;
  readonly visibleFraction: number;
}

/** Coverage of body and nucleus over the cell's window, clipped to the image; boxes from drawn pixels. */
function rasterCell(cell: CellSpec, W: number, H: number): Drawn | undefined {
  const ext = Math.ceil(cell.reach + 2);
  const fx0 = Math.floor(cell.cx) - ext;
  const fy0 = Math.floor(cell.cy) - ext;
  const fx1 = Math.floor(cell.cx) + ext + 1;
  const fy1 = Math.floor(cell.cy) + ext + 1;
  const x0 = Math.max(0, fx0);
  const y0 = Math.max(0, fy0);
  const x1 = Math.min(W, fx1);
  const y1 = Math.min(H, fy1);
  if (x1 <= x0 || y1 <= y0) return undefined;
  const w = x1 - x0;
  const h = y1 - y0;
  const body = new Float32Array(w * h);
  const bodySd = new Float32Array(w * h);
  const nuc = new Float32Array(w * h);
  let bx0 = Number.POSITIVE_INFINITY;
  let by0 = Number.POSITIVE_INFINITY;
  let bx1 = -1;
  let by1 = -1;
  let visible = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      // Shapes are sampled at pixel centres.
      const sd = cell.body(x + 0.5, y + 0.5);
      const cb = coverage(sd);
      if (cb <= 0) continue;
      const i = (y - y0) * w + (x - x0);
      body[i] = cb;
      bodySd[i] = sd;
      nuc[i] = coverage(cell.nucleus(x + 0.5, y + 0.5));
      visible += cb;
      if (x < bx0) bx0 = x;
      if (y < by0) by0 = y;
      if (x > bx1) bx1 = x;
      if (y > by1) by1 = y;
    }
  }
  if (bx1 < 0) return undefined;
  let total = visible;
  if (x0 !== fx0 || y0 !== fy0 || x1 !== fx1 || y1 !== fy1) {
    // Part of the window is off-image: estimate the full area to judge how much shows.
    total = 0;
    for (let y = fy0; y < fy1; y++)
      for (let x = fx0; x < fx1; x++) total += coverage(cell.body(x + 0.5, y + 0.5));
  }
  const maskOf = (src: Float32Array): CellMask => {
    const mw = bx1 - bx0 + 1;
    const mh = by1 - by0 + 1;
    const data = new Uint8Array(mw * mh);
    for (let y = 0; y < mh; y++) {
      for (let x = 0; x < mw; x++) data[y * mw + x] = src[(y + by0 - y0) * w + (x + bx0 - x0)]! > 0 ? 1 : 0;
    }
    return { x0: bx0, y0: by0, width: mw, height: mh, data };
  };
  return {
    x0,
    y0,
    w,
    h,
    body,
    bodySd,
    nuc,
    box: [bx0, by0, bx1 + 1, by1 + 1],
    mask: maskOf(body),
    nucleusMask: maskOf(nuc),
    visibleFraction: total > 0 ? visible / total : 0,
  };
}

function centreOnNucleus(d: Drawn): boolean {
  const cx = Math.floor((d.box[0] + d.box[2]) / 2);
  const cy = Math.floor((d.box[1] + d.box[3]) / 2);
  return d.nuc[(cy - d.y0) * d.w + (cx - d.x0)]! > 0;
}

/** Adds the cell's optical density (cytoplasm, then nucleus over it, granules, texture) to the field. */
function composite(
  odImg: Float32Array,
  W: number,
  cell: CellSpec,
  d: Drawn,
  st: SlideStain,
  texSeed: number,
): void {
  const cytoK = cell.cytoplasmStain === 'azure' ? st.azure : st.eosin;
  const nucK = st.azure;
  const { scale, contrast } = cell.chromatin;
  // Granules are splatted once into a window-sized buffer rather than tested per pixel.
  const gran = new Float32Array(d.w * d.h);
  for (const g of cell.granules) {
    const gx0 = Math.max(d.x0, Math.floor(g.x - g.r - 1));
    const gy0 = Math.max(d.y0, Math.floor(g.y - g.r - 1));
    const gx1 = Math.min(d.x0 + d.w, Math.ceil(g.x + g.r + 1));
    const gy1 = Math.min(d.y0 + d.h, Math.ceil(g.y + g.r + 1));
    for (let y = gy0; y < gy1; y++) {
      for (let x = gx0; x < gx1; x++) {
        const c = coverage(Math.sqrt((x + 0.5 - g.x) ** 2 + (y + 0.5 - g.y) ** 2) - g.r);
        const i = (y - d.y0) * d.w + (x - d.x0);
        if (c > gran[i]!) gran[i] = c;
      }
    }
  }
  for (let y = 0; y < d.h; y++) {
    for (let x = 0; x < d.w; x++) {
      const i = y * d.w + x;
      const cb = d.body[i]!;
      if (cb <= 0) continue;
      const px = x + d.x0 + 0.5;
      const py = y + d.y0 + 0.5;
      const cn = d.nuc[i]!;
      // Slightly darker rim: the membrane edge is what separates touching cells.
      const edge = d.bodySd[i]!;
      let cyto = 1 + 0.6 * Math.exp(-((edge + 1.2) ** 2) / 1.5);
      if (cell.halo) cyto *= 1 - 0.55 * coverage(cell.halo(px, py));
      cyto *= 0.9 + 0.2 * fbm(px, py, 6, texSeed);
      let nucl = 0;
      if (cn > 0) {
        nucl = 1 + contrast * (2 * fbm(px, py, scale, texSeed + 101) - 1);
        if (cell.nucleoli) nucl *= 1 - 0.45 * coverage(cell.nucleoli(px, py));
      }
      const gr = gran[i]!;
      const o = ((y + d.y0) * W + (x + d.x0)) * 3;
      for (let c = 0; c < 3; c++) {
        const cyt = cell.cytoplasm[c]! * cytoK * cyto;
        const v =
          cyt * (1 - cn) +
          cell.nucleusOD[c]! * nucK * nucl * cn +
          cell.granuleOD[c]! * st.eosin * gr * (1 - cn);
        odImg[o + c]! += cb * v;
      }
    }
  }
}

/** A red cell: pale disc with central pallor; returns its box and mask when `wantBox`. */
function drawRbc(
  odImg: Float32Array,
  W: number,
  H: number,
  rng: Rng,
  cx: number,
  cy: number,
  r: number,
  st: SlideStain,
  wantBox: boolean,
): { box: [number, number, number, number]; mask: CellMask } | undefined {
  const shape = blob(cx, cy, r, r * rng.uniform(0.88, 1), rng.uniform(0, 6.3), [
    { k: 2, amp: rng.uniform(0, 0.04), phase: rng.uniform(0, 6.3) },
    { k: 3, amp: rng.uniform(0, 0.03), phase: rng.uniform(0, 6.3) },
  ]);
  const pallorR = r * rng.uniform(0.35, 0.5);
  const strength = rng.uniform(0.75, 1.1) * st.eosin;
  const x0 = Math.max(0, Math.floor(cx - r * 1.1 - 2));
  const y0 = Math.max(0, Math.floor(cy - r * 1.1 - 2));
  const x1 = Math.min(W, Math.ceil(cx + r * 1.1 + 2));
  const y1 = Math.min(H, Math.ceil(cy + r * 1.1 + 2));
  let bx0 = Number.POSITIVE_INFINITY;
  let by0 = Number.POSITIVE_INFINITY;
  let bx1 = -1;
  let by1 = -1;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const cov = coverage(shape(x + 0.5, y + 0.5));
      if (cov <= 0) continue;
      const dc = Math.sqrt((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2);
      // Biconcave disc: thickest at the rim, thinnest in the centre.
      const pallor = 1 - 0.6 * Math.exp(-((dc / pallorR) ** 2));
      const o = (y * W + x) * 3;
      for (let c = 0; c < 3; c++) odImg[o + c]! += cov * RBC[c]! * strength * pallor;
      if (x < bx0) bx0 = x;
      if (y < by0) by0 = y;
      if (x > bx1) bx1 = x;
      if (y > by1) by1 = y;
    }
  }
  if (!wantBox || bx1 < 0) return undefined;
  const mw = bx1 - bx0 + 1;
  const mh = by1 - by0 + 1;
  const data = new Uint8Array(mw * mh);
  for (let y = 0; y < mh; y++) {
    for (let x = 0; x < mw; x++) data[y * mw + x] = coverage(shape(x + bx0 + 0.5, y + by0 + 0.5)) > 0 ? 1 : 0;
  }
  return { box: [bx0, by0, bx1 + 1, by1 + 1], mask: { x0: bx0, y0: by0, width: mw, height: mh, data } };
}
