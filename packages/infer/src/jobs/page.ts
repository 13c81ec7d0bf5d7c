/**
 * `GET /jobs`: a page to submit a slide (a path on the server or an upload), watch its tiles
 * finish, and open its overview with the detections drawn (plus the COCO results and the QuPath
 * GeoJSON), or, when the service writes Deep Zoom pyramids (`--deep-zoom`), the slide itself in
 * the deep-zoom viewer (`/slide.html`, part of the built viewer). Self-contained, no build step:
 * this page only talks to the job routes.
 */
export const JOBS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bmc slide jobs</title>
<style>
body{font:15px system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
form{display:flex;gap:.6em;align-items:center;flex-wrap:wrap;margin-bottom:1em}
input[type=text]{width:28em;padding:.3em}
progress{width:24em;height:1.1em}
#overview{max-width:100%;border:1px solid #ccc;margin-top:1em;display:none}
.err{color:#b00}
</style></head><body>
<h1>Slide jobs</h1>
<p>Slides are detected tile by tile by <code>bmc worker</code>s through Redis; the result is the same as <code>bmc detect</code> on one machine.</p>
<form id="by-path"><label>Slide on the server <input type="text" name="path" placeholder="slides/case-0412.svs"></label><button>Detect</button></form>
<form id="by-upload"><label>or upload <input type="file" name="file"></label><button>Upload and detect</button></form>
<div id="status"></div>
<img id="overview" alt="slide overview with the detected cells">
<script>
const status = document.getElementById('status');
const img = document.getElementById('overview');
let timer;
function show(job) {
  const p = job.progress || { done: 0, total: 0 };
  const counts = job.result ? Object.entries(job.result.counts).map(([k, v]) => k + ' ' + v).join(', ') : '';
  status.innerHTML = '';
  const line = document.createElement('p');
  line.textContent = job.file + ': ' + job.status + ' (' + p.done + ' of ' + p.total + ' tiles)' +
    (job.result ? ': ' + job.result.count + ' cells' + (counts ? ' (' + counts + ')' : '') : '') +
    (job.error ? ': ' + job.error : '');
  if (job.status === 'failed') line.className = 'err';
  const bar = document.createElement('progress');
  bar.max = p.total || 1; bar.value = p.done;
  status.append(line, bar);
  if (job.status === 'done') {
    const links = document.createElement('p');
    if (job.links.viewer) {
      const a = document.createElement('a'); a.href = job.links.viewer; a.id = 'open-viewer';
      a.textContent = 'Open the slide in the deep-zoom viewer'; links.append(a, ' | ');
    }
    for (const [name, href] of [['COCO results', job.links.results], ['QuPath GeoJSON', job.links.geojson]]) {
      const a = document.createElement('a'); a.href = href; a.textContent = name; a.download = '';
      links.append(a, ' ');
    }
    status.append(links);
    img.src = job.links.overview; img.style.display = 'block';
  }
}
async function watch(id) {
  clearTimeout(timer);
  const job = await (await fetch('/v1/jobs/' + id)).json();
  show(job);
  if (job.status === 'running') timer = setTimeout(() => watch(id), 1000);
}
async function submit(init) {
  img.style.display = 'none';
  status.textContent = 'submitting...';
  const res = await fetch('/v1/jobs', { method: 'POST', ...init });
  const job = await res.json();
  if (!res.ok) { status.innerHTML = ''; const e = document.createElement('p'); e.className = 'err'; e.textContent = job.error; status.append(e); return; }
  history.replaceState(null, '', '#' + job.id);
  watch(job.id);
}
document.getElementById('by-path').onsubmit = (e) => {
  e.preventDefault();
  submit({ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path: e.target.path.value }) });
};
document.getElementById('by-upload').onsubmit = (e) => {
  e.preventDefault();
  if (e.target.file.files.length) submit({ body: new FormData(e.target) });
};
if (location.hash.length > 1) watch(location.hash.slice(1));
</script></body></html>
`;
