// Find text boxes in an image with PP-OCRv4 det served by `edgefit serve` (or the agent): plain
// Node 20, no edgefit code; jpeg-js and pngjs decode the image (`npm i jpeg-js pngjs`).
// The image goes as a binary tensor (KServe v2 + Triton's binary extension, docs/serving.md), or
// with --shm through a /dev/shm file (Triton's system shared-memory extension; this box only).
//   node examples/ocr-client.mjs assets/calib/det/judge/page-a.jpg [--url http://127.0.0.1:8551 | --socket /run/edgefit/serve.sock] [--model default] [--token T] [--shm]
/* global Buffer, URL, console, process */
import { closeSync, fchmodSync, ftruncateSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8551' },
    socket: { type: 'string' },
    model: { type: 'string', default: 'default' },
    token: { type: 'string' },
    shm: { type: 'boolean', default: false },
  },
});
const file = positionals[0] ?? 'assets/calib/det/judge/page-a.jpg';
const bytes = readFileSync(file);
const img = /\.png$/i.test(file) ? pngjs.PNG.sync.read(bytes) : jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });

// det's preprocessing: stretch to 640x640 (bilinear), BGR, (v/255 - mean) / std, NCHW float32
const S = 640,
  MEAN = [0.485, 0.456, 0.406],
  STD = [0.229, 0.224, 0.225];
const x = new Float32Array(3 * S * S);
for (let y = 0; y < S; y++) {
  const fy = Math.min(img.height - 1, Math.max(0, ((y + 0.5) * img.height) / S - 0.5)),
    y0 = Math.floor(fy),
    y1 = Math.min(img.height - 1, y0 + 1),
    wy = fy - y0;
  for (let xx = 0; xx < S; xx++) {
    const fx = Math.min(img.width - 1, Math.max(0, ((xx + 0.5) * img.width) / S - 0.5)),
      x0 = Math.floor(fx),
      x1 = Math.min(img.width - 1, x0 + 1),
      wx = fx - x0;
    for (let k = 0; k < 3; k++) {
      const ch = 2 - k; // BGR
      const px = (r, c) => img.data[(r * img.width + c) * 4 + ch];
      const v = (px(y0, x0) * (1 - wx) + px(y0, x1) * wx) * (1 - wy) + (px(y1, x0) * (1 - wx) + px(y1, x1) * wx) * wy;
      x[(k * S + y) * S + xx] = (v / 255 - MEAN[k]) / STD[k];
    }
  }
}

// one HTTP request over TCP or the Unix socket; the whole answer
const where = o.socket ? { socketPath: o.socket } : { host: new URL(o.url).hostname, port: new URL(o.url).port };
const call = (method, path, parts = [], headers = {}) =>
  new Promise((resolve, reject) => {
    const req = request(
      {
        ...where,
        method,
        path,
        headers: {
          'content-length': parts.reduce((n, b) => n + b.length, 0),
          ...headers,
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
        },
      },
      (res) => {
        const chunks = [];
        res
          .on('data', (c) => chunks.push(c))
          .on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    for (const b of parts) req.write(b);
    req.end();
  });
const ok = (reply) => {
  if (reply.status !== 200) throw new Error(`${reply.status}: ${reply.body.toString()}`);
  return reply;
};
const postJson = async (path, doc) =>
  JSON.parse(ok(await call('POST', path, [Buffer.from(JSON.stringify(doc))], { 'content-type': 'application/json' })).body.toString());

let meta, map, out;
if (o.shm) {
  // shared memory (docs/serving.md): the input and the output live in one /dev/shm file this
  // process creates; the server reads and writes it (group rw so the edgefit user can)
  const key = `/ocr-client-${process.pid}`;
  const OUT = S * S * 4;
  const fd = openSync(`/dev/shm${key}`, 'w+', 0o660);
  try {
    fchmodSync(fd, 0o660);
    ftruncateSync(fd, x.byteLength + OUT);
    const [outName] = JSON.parse(ok(await call('GET', `/v2/models/${o.model}`)).body.toString()).outputs.map((m) => m.name);
    await postJson(`/v2/systemsharedmemory/region/${key.slice(1)}-in/register`, { key, offset: 0, byte_size: x.byteLength });
    await postJson(`/v2/systemsharedmemory/region/${key.slice(1)}-out/register`, { key, offset: x.byteLength, byte_size: OUT });
    try {
      writeSync(fd, new Uint8Array(x.buffer), 0, x.byteLength, 0);
      meta = await postJson(`/v2/models/${o.model}/infer`, {
        inputs: [
          {
            name: 'x',
            datatype: 'FP32',
            shape: [1, 3, S, S],
            parameters: { shared_memory_region: `${key.slice(1)}-in`, shared_memory_byte_size: x.byteLength },
          },
        ],
        outputs: [{ name: outName, parameters: { shared_memory_region: `${key.slice(1)}-out`, shared_memory_byte_size: OUT } }],
      });
      out = meta.outputs[0];
      map = new Float32Array(out.parameters.shared_memory_byte_size / 4);
      readSync(fd, new Uint8Array(map.buffer), 0, map.byteLength, x.byteLength);
    } finally {
      for (const w of ['in', 'out']) await call('POST', `/v2/systemsharedmemory/region/${key.slice(1)}-${w}/unregister`);
    }
  } finally {
    closeSync(fd);
    rmSync(`/dev/shm${key}`, { force: true });
  }
} else {
  // the request: JSON header, then the tensor's raw little-endian bytes; outputs asked back binary
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3, S, S], parameters: { binary_data_size: x.byteLength } }],
      parameters: { binary_data_output: true },
    }),
  );
  const reply = ok(
    await call('POST', `/v2/models/${o.model}/infer`, [header, Buffer.from(x.buffer)], {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': header.length,
    }),
  );
  const hl = Number(reply.headers['inference-header-content-length']);
  meta = JSON.parse(reply.body.subarray(0, hl).toString());
  out = meta.outputs[0];
  map = new Float32Array(Uint8Array.from(reply.body.subarray(hl, hl + out.parameters.binary_data_size)).buffer);
}
const [H, W] = out.shape.slice(2);

// text boxes as PP-OCR's DB post-processing cuts them (boxes_from_bitmap, score_mode 'fast'):
// pixels over 0.3, 8-connected regions, each region's smallest rotated rectangle through its
// pixel centres (cv2.minAreaRect), shorter side >= 3, the map's mean over that rectangle >= 0.6,
// then grown on every side by area x 1.5 / perimeter (unclip), shorter side >= 5; printed as the
// grown rectangle's axis-aligned bounds, scaled back to the image
function minAreaRect(pts) {
  // convex hull (monotone chain), then the rectangle along each hull edge; the smallest wins
  pts.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const half = (list) => {
    const h = [];
    for (const p of list) {
      while (h.length >= 2 && cross(h[h.length - 2], h[h.length - 1], p) <= 0) h.pop();
      h.push(p);
    }
    return h.slice(0, -1);
  };
  const hull = pts.length < 3 ? pts : [...half(pts), ...half([...pts].reverse())];
  let best = { cx: hull[0][0], cy: hull[0][1], ux: 1, uy: 0, width: 0, height: 0 },
    bestArea = Infinity;
  for (let i = 0; i < hull.length && hull.length > 1; i++) {
    const [x0, y0] = hull[i],
      [x1, y1] = hull[(i + 1) % hull.length],
      len = Math.hypot(x1 - x0, y1 - y0);
    if (!len) continue;
    const ux = (x1 - x0) / len,
      uy = (y1 - y0) / len;
    let u0 = Infinity,
      u1 = -Infinity,
      v0 = Infinity,
      v1 = -Infinity;
    for (const [x, y] of hull) {
      const u = x * ux + y * uy,
        v = -x * uy + y * ux;
      u0 = Math.min(u0, u);
      u1 = Math.max(u1, u);
      v0 = Math.min(v0, v);
      v1 = Math.max(v1, v);
    }
    if ((u1 - u0) * (v1 - v0) < bestArea - 1e-9) {
      bestArea = (u1 - u0) * (v1 - v0);
      const cu = (u0 + u1) / 2,
        cv = (v0 + v1) / 2;
      best = { cx: cu * ux - cv * uy, cy: cu * uy + cv * ux, ux, uy, width: u1 - u0, height: v1 - v0 };
    }
  }
  return best;
}
const cornersOf = (r) =>
  [
    [-1, -1],
    [1, -1],
    [1, 1],
    [-1, 1],
  ].map(([a, b]) => [r.cx + (a * r.width * r.ux - b * r.height * r.uy) / 2, r.cy + (a * r.width * r.uy + b * r.height * r.ux) / 2]);
function meanInRect(r) {
  // pixels whose centre is within half a pixel of the rectangle, as the box polygon is filled
  const cs = cornersOf(r),
    xs = cs.map((c) => c[0]),
    ys = cs.map((c) => c[1]);
  let sum = 0,
    n = 0;
  for (let y = Math.max(0, Math.floor(Math.min(...ys) - 0.5)); y <= Math.min(H - 1, Math.ceil(Math.max(...ys) + 0.5)); y++)
    for (let x = Math.max(0, Math.floor(Math.min(...xs) - 0.5)); x <= Math.min(W - 1, Math.ceil(Math.max(...xs) + 0.5)); x++) {
      const dx = x - r.cx,
        dy = y - r.cy;
      if (Math.abs(dx * r.ux + dy * r.uy) <= r.width / 2 + 0.5 + 1e-9 && Math.abs(-dx * r.uy + dy * r.ux) <= r.height / 2 + 0.5 + 1e-9) {
        sum += map[y * W + x];
        n++;
      }
    }
  return n ? sum / n : 0;
}
const seen = new Uint8Array(H * W),
  stack = new Int32Array(H * W),
  boxes = [];
for (let s = 0; s < H * W; s++) {
  if (seen[s] || map[s] <= 0.3) continue;
  let top = 0;
  // each row's outermost pixels: their hull is the region's
  const rows = new Map();
  stack[top++] = s;
  seen[s] = 1;
  while (top) {
    const p = stack[--top],
      py = (p / W) | 0,
      px = p % W,
      row = rows.get(py);
    if (row) {
      row[0] = Math.min(row[0], px);
      row[1] = Math.max(row[1], px);
    } else rows.set(py, [px, px]);
    for (let dy = -1; dy <= 1; dy++)
      for (let dx = -1; dx <= 1; dx++) {
        const qy = py + dy,
          qx = px + dx,
          q = qy * W + qx;
        if (qy >= 0 && qy < H && qx >= 0 && qx < W && !seen[q] && map[q] > 0.3) {
          seen[q] = 1;
          stack[top++] = q;
        }
      }
  }
  const r = minAreaRect(
    [...rows].flatMap(([y, [a, b]]) => [
      [a, y],
      [b, y],
    ]),
  );
  const side = Math.min(r.width, r.height);
  if (side < 3) continue;
  const score = meanInRect(r);
  if (score < 0.6) continue;
  const d = (r.width * r.height * 1.5) / (2 * (r.width + r.height));
  if (side + 2 * d < 5) continue;
  const cs = cornersOf({ ...r, width: r.width + 2 * d, height: r.height + 2 * d });
  const xs = cs.map((c) => c[0]),
    ys = cs.map((c) => c[1]);
  boxes.push({
    x0: Math.max(0, Math.min(...xs)),
    y0: Math.max(0, Math.min(...ys)),
    x1: Math.min(W, Math.max(...xs)),
    y1: Math.min(H, Math.max(...ys)),
    score,
  });
}
const sx = img.width / W,
  sy = img.height / H;
boxes.sort((a, b) => a.y0 - b.y0 || a.x0 - b.x0);
console.log(
  `${file}: ${boxes.length} text boxes from model version ${meta.model_version} (${meta.parameters.label}, ${meta.parameters.run_ms} ms)`,
);
for (const b of boxes)
  console.log(
    `  [${Math.round(b.x0 * sx)}, ${Math.round(b.y0 * sy)}, ${Math.round(b.x1 * sx)}, ${Math.round(b.y1 * sy)}]  score ${b.score.toFixed(2)}`,
  );
