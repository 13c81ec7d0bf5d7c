/**
 * The deep-zoom slide viewer (`/slide.html#<job id>`): a finished slide job of `bmc serve --queue
 * --deep-zoom` opened with OpenSeadragon (bundled by this build, never fetched from elsewhere: a
 * slide stays in the hospital), its Deep Zoom tiles from the job routes, the job's detected cells
 * (its QuPath GeoJSON) drawn over it on a canvas in their class or cell-type colour, and the
 * counts and differential beside it.
 */
import type { DifferentialCount } from '@bmc/classify';
import OpenSeadragon from 'openseadragon';

interface Job {
  id: string;
  file: string;
  status: 'running' | 'done' | 'failed';
  error?: string;
  progress: { done: number; total: number };
  result?: {
    width: number;
    height: number;
    count: number;
    counts: Record<string, number>;
    differential?: DifferentialCount;
    deepZoom?: { glass?: string };
  };
  links: { results: string; geojson: string; overview: string; dzi?: string };
}

interface Feature {
  geometry: { coordinates: number[][][] };
  properties: { classification: { name: string; color: [number, number, number] } };
}

/** One drawn cell: its box in slide (level-0) pixels and its colour. */
interface Cell {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  name: string;
  colour: string;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const id = location.hash.slice(1) || new URLSearchParams(location.search).get('job') || '';

let cells: Cell[] = [];
let drawn = 0;
let tilesLoaded = 0;
let viewer: OpenSeadragon.Viewer | undefined;

/** Test and scripting hook. */
const api = {
  ready: undefined as unknown as Promise<void>,
  job: undefined as Job | undefined,
  /** Cells loaded for the overlay. */
  cells: () => cells.length,
  /** Cells drawn in the last overlay frame (those inside the view). */
  drawn: () => drawn,
  /** Deep Zoom tiles loaded so far. */
  tilesLoaded: () => tilesLoaded,
  /** The part of the slide in view, in level-0 pixels. */
  view: () => {
    const item = viewer?.world.getItemAt(0);
    if (!item) return undefined;
    const r = item.viewportToImageRectangle(viewer!.viewport.getBounds(true));
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  },
  /** Zooms to a rectangle of the slide, in level-0 pixels. */
  zoomTo: (x: number, y: number, w: number, h: number) => {
    const item = viewer?.world.getItemAt(0);
    if (item) viewer!.viewport.fitBounds(item.imageToViewportRectangle(x, y, w, h), true);
  },
};
(window as unknown as { bmcSlide: typeof api }).bmcSlide = api;

function status(text: string, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

const getJson = async <T>(url: string): Promise<T> => {
  const res = await fetch(url);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${url}: ${(body as { error?: string }).error ?? `HTTP ${res.status}`}`);
  return body as T;
};

/** The finished job, polled while it runs. */
async function finishedJob(): Promise<Job> {
  for (;;) {
    const job = await getJson<Job>(`./v1/jobs/${id}`);
    if (job.status === 'failed') throw new Error(`${job.file}: the job failed (${job.error ?? 'no reason'})`);
    if (job.status === 'done') return job;
    status(`${job.file}: running, ${job.progress.done} of ${job.progress.total} tiles`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function toCells(features: readonly Feature[]): Cell[] {
  return features.map((f) => {
    // A closed box polygon: corners 0 (x1, y1) and 2 (x2, y2).
    const ring = f.geometry.coordinates[0]!;
    const [r, g, b] = f.properties.classification.color;
    return {
      x1: ring[0]![0]!,
      y1: ring[0]![1]!,
      x2: ring[2]![0]!,
      y2: ring[2]![1]!,
      name: f.properties.classification.name,
      colour: `rgb(${r},${g},${b})`,
    };
  });
}

/** The cells over the slide, redrawn on every viewport change (thousands: one canvas, not one element each). */
function overlay(v: OpenSeadragon.Viewer): () => void {
  const canvas = document.createElement('canvas');
  canvas.id = 'cells-overlay';
  canvas.style.cssText = 'position:absolute;inset:0;pointer-events:none';
  v.canvas.appendChild(canvas);
  const draw = () => {
    const dpr = window.devicePixelRatio || 1;
    const w = v.canvas.clientWidth;
    const h = v.canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.width = `${w}px`;
      canvas.style.height = `${h}px`;
    }
    const ctx = canvas.getContext('2d')!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    drawn = 0;
    const item = v.world.getItemAt(0);
    if (!item || !($('show-cells') as HTMLInputElement).checked) return;
    // Slide pixels to screen pixels: one scale and offset (the image is not rotated).
    const o = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    const s = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 0)).x - o.x;
    const k = s / 1000;
    ctx.lineWidth = 1.5;
    for (const c of cells) {
      const x = o.x + c.x1 * k;
      const y = o.y + c.y1 * k;
      // At least 2 px so a cell stays visible when the whole slide is on screen.
      const bw = Math.max(2, (c.x2 - c.x1) * k);
      const bh = Math.max(2, (c.y2 - c.y1) * k);
      if (x > w || y > h || x + bw < 0 || y + bh < 0) continue;
      ctx.strokeStyle = c.colour;
      ctx.strokeRect(x, y, bw, bh);
      drawn++;
    }
  };
  v.addHandler('update-viewport', draw);
  v.addHandler('resize', draw);
  $('show-cells').addEventListener('change', draw);
  return draw;
}

function summary(job: Job) {
  const r = job.result!;
  $('slide-name').textContent = job.file.split('/').pop() ?? job.file;
  $('slide-info').textContent = `${r.width} x ${r.height} px, ${r.count} cells`;
  const colourOf = new Map(cells.map((c) => [c.name, c.colour]));
  const row = (name: string, ...values: string[]) => {
    const tr = document.createElement('tr');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = colourOf.get(name) ?? 'transparent';
    const first = document.createElement('td');
    first.append(swatch);
    tr.append(first);
    for (const v of [name, ...values]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    return tr;
  };
  const total = (...values: string[]) => {
    const tr = document.createElement('tr');
    tr.append(document.createElement('td'));
    for (const v of values) {
      const td = document.createElement('td');
      const b = document.createElement('b');
      b.textContent = v;
      td.append(b);
      tr.append(td);
    }
    return tr;
  };
  $('counts').replaceChildren(
    ...Object.entries(r.counts).map(([name, n]) => row(name, String(n))),
    total('total', String(r.count)),
  );
  if (r.differential) {
    $('differential-section').hidden = false;
    $('differential').replaceChildren(
      ...r.differential.rows.map((d) => row(d.type, String(d.count), `${d.percent.toFixed(1)}%`)),
      total('nucleated', String(r.differential.total), '100%'),
    );
  }
  $('files').replaceChildren(
    ...[
      ['COCO results', job.links.results],
      ['QuPath GeoJSON', job.links.geojson],
      ['overview image', job.links.overview],
    ].map(([name, href]) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = `.${href}`;
      a.textContent = name!;
      li.append(a);
      return li;
    }),
  );
}

async function open() {
  if (!/^[0-9a-f]{32}$/.test(id)) {
    status('No job: open this page as /slide.html#<job id> (the slide jobs page links here).', true);
    return;
  }
  const job = await finishedJob();
  api.job = job;
  if (!job.links.dzi || !job.result) {
    status(
      `${job.file}: this job has no deep-zoom pyramid (the service runs without --deep-zoom); its overview image is at ${job.links.overview}`,
      true,
    );
    return;
  }
  const geo = await getJson<{ features: Feature[] }>(`.${job.links.geojson}`);
  cells = toCells(geo.features);
  summary(job);
  // Glass tiles were never written: the viewer's background is the glass colour instead.
  $('slide').style.background = job.result.deepZoom?.glass ?? '#ffffff';
  const v = OpenSeadragon({
    element: $('slide'),
    tileSources: `.${job.links.dzi}`,
    // Our own buttons: OpenSeadragon's would load its button images from a prefix URL.
    zoomInButton: 'zoom-in',
    zoomOutButton: 'zoom-out',
    homeButton: 'home',
    fullPageButton: 'full-page',
    showNavigator: true,
    navigatorPosition: 'BOTTOM_RIGHT',
    maxZoomPixelRatio: 2,
    visibilityRatio: 0.5,
  });
  viewer = v;
  v.addHandler('tile-loaded', () => {
    tilesLoaded++;
  });
  const draw = overlay(v);
  await new Promise<void>((resolve, reject) => {
    v.addOnceHandler('open', () => resolve());
    v.addOnceHandler('open-failed', (e) => reject(new Error(`${job.links.dzi}: ${e.message}`)));
  });
  draw();
  status(`${job.file}: ${job.result.count} cells; scroll or use the buttons to zoom, drag to pan.`);
}

api.ready = open().catch((e: Error) => status(e.message, true));
