// The operators' map: pseudonymous people at their last position, their geofences and their
// alert state, on a local plane (no map tiles: nothing is fetched from outside the node).
// Canvas, so that 10,000 people redraw in a few milliseconds. Positions come from
// `GET /api/map` (polled), zones from `GET /api/map/zones`; alert state follows the live
// stream at once.

import { $, api, el, state, LEVELS, LEVEL_COLOURS, liveLevel, liveLevels, personLink, short } from "./util.js";

const POLL_MS = 2000;
const ZONES_POLL_MS = 30_000;
const METRES_PER_DEG_LAT = 111_320;
const HIT_RADIUS_PX = 8;

const map = {
  people: [],
  zones: [],
  loaded: false,
  timer: null,
  zonesAt: 0,
  view: null, // { lat0, lon0, cosLat, scale (px per metre), cx, cy (metres at the centre) }
  selected: null,
  lastDrawMs: 0,
  draws: 0,
  /** [end time (ms since the epoch), duration (ms), people] of each redraw. */
  drawLog: [],
};
// For measurements (web/tests/scale.mjs): the last redraw's duration and count.
window.__vigilMap = map;

export function mapVisible() {
  return !$("map-view").hidden;
}

export async function openMap() {
  $("map-status").textContent = map.loaded ? $("map-status").textContent : "Loading positions…";
  await refresh(true);
  clearInterval(map.timer);
  map.timer = setInterval(() => { if (mapVisible()) refresh(false); else clearInterval(map.timer); }, POLL_MS);
}

async function refresh(withZones) {
  try {
    const wantZones = withZones || Date.now() - map.zonesAt > ZONES_POLL_MS;
    const [people, zones] = await Promise.all([
      api("GET", "/api/map"),
      wantZones ? api("GET", "/api/map/zones") : null,
    ]);
    map.people = people.people;
    map.serverTime = people.time_ms;
    if (zones) { map.zones = zones.zones; map.zonesAt = Date.now(); }
    if (!map.view) fit();
    map.loaded = true;
    draw();
  } catch (e) {
    $("map-status").replaceChildren(el("span", { class: "error" }, e.message));
  }
}

/** Local equirectangular projection around the data's centre: metres east and north. */
function project(lat_udeg, lon_udeg) {
  const v = map.view;
  return [
    ((lon_udeg - v.lon0) / 1e6) * METRES_PER_DEG_LAT * v.cosLat,
    ((lat_udeg - v.lat0) / 1e6) * METRES_PER_DEG_LAT,
  ];
}

function fit() {
  const points = [];
  for (const p of map.people) if (p.lat_udeg !== undefined) points.push([p.lat_udeg, p.lon_udeg]);
  for (const z of map.zones) {
    if (z.circle) points.push([z.circle.lat_udeg, z.circle.lon_udeg]);
    for (const v of z.polygon ?? []) points.push(v);
  }
  if (!points.length) { map.view = null; return; }
  const lats = points.map((p) => p[0]);
  const lons = points.map((p) => p[1]);
  const lat0 = (Math.min(...lats) + Math.max(...lats)) / 2;
  const lon0 = (Math.min(...lons) + Math.max(...lons)) / 2;
  map.view = { lat0, lon0, cosLat: Math.cos((lat0 / 1e6) * Math.PI / 180), cx: 0, cy: 0, scale: 1 };
  let w = 1, h = 1;
  for (const [lat, lon] of points) {
    const [x, y] = project(lat, lon);
    w = Math.max(w, Math.abs(x) * 2);
    h = Math.max(h, Math.abs(y) * 2);
  }
  const canvas = $("map-canvas");
  const margin = 1.1;
  map.view.scale = Math.max(1e-4, Math.min(canvas.clientWidth / (w * margin + 400), canvas.clientHeight / (h * margin + 400)));
}

function toScreen(x, y, width, height) {
  const v = map.view;
  return [width / 2 + (x - v.cx) * v.scale, height / 2 - (y - v.cy) * v.scale];
}

export function draw() {
  const canvas = $("map-canvas");
  if (!canvas || !mapVisible()) return;
  const t0 = performance.now();
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = "#f4f6f8";
  ctx.fillRect(0, 0, width, height);
  if (!map.view) fit();
  if (!map.view) {
    ctx.fillStyle = "#5b6470";
    ctx.font = "14px system-ui, sans-serif";
    ctx.fillText(map.loaded ? "No positions or zones yet: they appear as phones report." : "Loading…", 16, 28);
    summarise(0, [0, 0, 0]);
    return;
  }

  // Zones: keep-inside in blue, keep-outside in red, dashed.
  ctx.lineWidth = 1;
  for (const z of map.zones) {
    ctx.strokeStyle = z.rule === "keep-outside" ? "rgba(198,40,40,.7)" : "rgba(18,53,91,.45)";
    ctx.fillStyle = z.rule === "keep-outside" ? "rgba(198,40,40,.08)" : "rgba(18,53,91,.05)";
    ctx.beginPath();
    if (z.circle) {
      const [x, y] = toScreen(...project(z.circle.lat_udeg, z.circle.lon_udeg), width, height);
      const r = Math.max(1, z.circle.radius_m * map.view.scale);
      if (x + r < 0 || y + r < 0 || x - r > width || y - r > height) continue;
      ctx.arc(x, y, r, 0, 2 * Math.PI);
    } else if (z.polygon?.length) {
      z.polygon.forEach(([lat, lon], i) => {
        const [x, y] = toScreen(...project(lat, lon), width, height);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.closePath();
    }
    ctx.fill();
    ctx.stroke();
  }

  // People: calm ones first, alerted ones on top and larger.
  const counts = [0, 0, 0];
  let placed = 0;
  const byLevel = [[], [], []];
  const live = liveLevels();
  for (const p of map.people) {
    const level = Math.min(2, live.get(p.person) ?? p.level ?? 0);
    counts[level]++;
    if (p.lat_udeg === undefined) continue;
    placed++;
    const [x, y] = toScreen(...project(p.lat_udeg, p.lon_udeg), width, height);
    p._x = x; p._y = y; p._level = level;
    if (x < -10 || y < -10 || x > width + 10 || y > height + 10) continue;
    byLevel[level].push(p);
  }
  byLevel.forEach((list, level) => {
    const r = level ? 5 : 2.5;
    ctx.fillStyle = LEVEL_COLOURS[level];
    ctx.strokeStyle = "#fff";
    ctx.beginPath();
    for (const p of list) { ctx.moveTo(p._x + r, p._y); ctx.arc(p._x, p._y, r, 0, 2 * Math.PI); }
    ctx.fill();
    if (level) ctx.stroke();
  });
  if (map.selected) {
    const p = map.people.find((q) => q.person === map.selected);
    if (p?._x !== undefined) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(p._x, p._y, 9, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }
  scaleBar(ctx, width, height);
  summarise(placed, counts);
  map.lastDrawMs = performance.now() - t0;
  map.draws++;
  if (map.drawLog.length < 10_000) map.drawLog.push([Date.now(), map.lastDrawMs, map.people.length]);
  canvas.dataset.draws = String(map.draws);
}

/** A scale bar of a round length (1, 2 or 5 × 10^k metres) about a fifth of the width. */
function scaleBar(ctx, width, height) {
  const target = width / 5 / map.view.scale;
  const pow = 10 ** Math.floor(Math.log10(target));
  const metres = [5, 2, 1].map((m) => m * pow).find((m) => m <= target) ?? pow;
  const px = metres * map.view.scale;
  const x = 16, y = height - 18;
  ctx.fillStyle = "rgba(255,255,255,.85)";
  ctx.fillRect(x - 6, y - 20, px + 12, 30);
  ctx.strokeStyle = "#1b1f24";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(x, y - 5); ctx.lineTo(x, y); ctx.lineTo(x + px, y); ctx.lineTo(x + px, y - 5);
  ctx.stroke();
  ctx.fillStyle = "#1b1f24";
  ctx.font = "12px system-ui, sans-serif";
  const label = metres >= 1000 ? `${metres / 1000} km` : `${metres} m`;
  ctx.fillText(label, x + 4, y - 7);
  $("map-canvas").dataset.scale = label;
}

function summarise(placed, counts) {
  const total = map.people.length;
  $("map-status").textContent = total
    ? `${total} people, ${placed} with a position; ${counts[2]} critical, ${counts[1]} warning. Updated ${new Date().toLocaleTimeString()}.`
    : map.loaded ? "Nobody is registered yet." : "Loading positions…";
  // The accessible alternative to the picture: the people in alert, as links.
  const alerted = map.people
    .filter((p) => (p._level ?? liveLevel(p.person, p.level ?? 0)) > 0)
    .sort((a, b) => (b._level ?? 0) - (a._level ?? 0))
    .slice(0, 50);
  const list = $("map-alerted");
  const key = alerted.map((p) => p.person + p._level).join();
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...(alerted.length
    ? alerted.map((p) => el("li", {},
      el("span", { class: `badge level-${p._level}` }, LEVELS[p._level]), " ",
      personLink(p.person), " ",
      el("button", { type: "button", class: "link", onclick: () => select(p.person), "aria-label": `Show ${short(p.person)} on the map` }, "show")))
    : [el("li", { class: "muted" }, "Nobody is in alert.")]));
}

function select(person) {
  map.selected = person;
  const p = map.people.find((q) => q.person === person);
  if (p?.lat_udeg !== undefined) {
    const [x, y] = project(p.lat_udeg, p.lon_udeg);
    map.view.cx = x; map.view.cy = y;
    map.view.scale = Math.max(map.view.scale, 0.5);
  }
  describe(p);
  draw();
}

function describe(p) {
  const box = $("map-selected");
  if (!p) { box.replaceChildren(); return; }
  const level = liveLevel(p.person, p.level ?? 0);
  const zones = map.zones.filter((z) => z.person === p.person).map((z) => z.name).join(", ") || "none";
  box.replaceChildren(
    el("strong", {}, "Selected: "), personLink(p.person), " ",
    el("span", { class: `badge level-${level}` }, LEVELS[level]), " ",
    p.time_ms ? `last fix ${new Date(p.time_ms).toLocaleTimeString()}, ±${p.accuracy_m} m` : "no position yet",
    `; zones: ${zones}. `,
    el("a", { href: `#person/${p.person}` }, "Open the person page"));
}

function zoom(factor, sx, sy) {
  const canvas = $("map-canvas");
  const v = map.view;
  if (!v) return;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  sx ??= w / 2; sy ??= h / 2;
  // Keep the point under the cursor in place.
  const mx = v.cx + (sx - w / 2) / v.scale, my = v.cy - (sy - h / 2) / v.scale;
  v.scale = Math.min(50, Math.max(0.001, v.scale * factor));
  v.cx = mx - (sx - w / 2) / v.scale;
  v.cy = my + (sy - h / 2) / v.scale;
  draw();
}

function pan(dx, dy) {
  if (!map.view) return;
  map.view.cx -= dx / map.view.scale;
  map.view.cy += dy / map.view.scale;
  draw();
}

export function initMap() {
  const canvas = $("map-canvas");
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rect = canvas.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - rect.left, e.clientY - rect.top);
  }, { passive: false });
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, moved: false }; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
    drag.x = e.clientX; drag.y = e.clientY;
    if (drag.moved) pan(dx, dy);
  });
  canvas.addEventListener("pointerup", (e) => {
    const wasDrag = drag?.moved;
    drag = null;
    if (wasDrag) return;
    const rect = canvas.getBoundingClientRect();
    const x = e.clientX - rect.left, y = e.clientY - rect.top;
    let best = null, bestD = HIT_RADIUS_PX ** 2;
    for (const p of map.people) {
      if (p._x === undefined) continue;
      const d = (p._x - x) ** 2 + (p._y - y) ** 2;
      if (d <= bestD) { best = p; bestD = d; }
    }
    map.selected = best?.person ?? null;
    describe(best);
    draw();
  });
  // Keyboard: arrows pan, + and - zoom, 0 fits everything.
  canvas.addEventListener("keydown", (e) => {
    const step = 60;
    const keys = {
      ArrowLeft: () => pan(step, 0), ArrowRight: () => pan(-step, 0),
      ArrowUp: () => pan(0, step), ArrowDown: () => pan(0, -step),
      "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8),
      0: () => { fit(); draw(); },
    };
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
  $("map-zoom-in").addEventListener("click", () => zoom(1.5));
  $("map-zoom-out").addEventListener("click", () => zoom(1 / 1.5));
  $("map-fit").addEventListener("click", () => { fit(); draw(); });
  window.addEventListener("resize", () => draw());
  state.onAlertsChanged.push(() => { if (mapVisible()) draw(); });
}
