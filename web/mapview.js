// The dashboard's map component: people, geofence zones, a person's track and a zone being
// drawn, in one picture. With a tile server configured on the node (`GET /api/map/config`) it
// lies over OpenStreetMap-style tiles through Leaflet (vendored in web/vendor/leaflet); without
// one it is a local equirectangular plane with a scale bar, and nothing is fetched from outside
// the node. Both modes draw every layer on one canvas above the tiles, so 10,000 people redraw
// in milliseconds, and share one drawing tool (a circle: press at the centre, drag to the
// radius; a polygon: click each vertex, then the first one again, Enter or double-click).
// Coordinates are micro-degrees, as the API gives them.

import { api, el, LEVEL_COLOURS } from "./util.js";

const METRES_PER_DEG_LAT = 111_320;
const HIT_RADIUS_PX = 8;
/** A press that moves less than this is a click, not a drag. */
const CLICK_SLOP_PX = 4;
/** Polygon vertices one drawing takes at most (the contract's own bound is 1,024). */
const DRAW_VERTICES_MAX = 64;
/** The smallest circle a drag draws, in pixels of radius (a shorter drag is a click). */
const DRAW_RADIUS_MIN_PX = 6;
const ZOOM_FIT_MAX = 17;

let config = null;

/** The node's map configuration (`{tiles: null | {url, attribution, max_zoom}}`), read once
 * per session; a failed read is tried again next time. */
export async function mapConfig() {
  config ??= api("GET", "/api/map/config").catch((e) => { config = null; throw e; });
  return config;
}

/** Text as HTML (Leaflet writes attributions with innerHTML; ours is plain text). */
function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export class MapView {
  /**
   * @param {HTMLElement} box the element the map fills (sized by CSS)
   * @param {{label: string, tiles: null | {url: string, attribution: string, max_zoom: number},
   *   onClick?: (x: number, y: number) => void}} options
   */
  constructor(box, { label, tiles, onClick }) {
    this.box = box;
    this.onClick = onClick ?? (() => {});
    this.layers = { zones: [], people: [], track: [], selected: null };
    this.tool = null;
    this.draws = 0;
    this.lastDrawMs = 0;
    this.afterDraw = () => {};
    box.classList.add("map-box");
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", label);
    box.tabIndex = 0;
    this.canvas = el("canvas", { class: "map-overlay", "aria-hidden": "true" });
    this.mode = tiles && window.L ? "tiles" : "plane";
    box.dataset.mode = this.mode;
    if (this.mode === "tiles") this.initTiles(tiles);
    else this.initPlane();
    this.initDrawing();
    this.resizeObserver = new ResizeObserver(() => { this.leaflet?.invalidateSize(false); this.redraw(); });
    this.resizeObserver.observe(box);
  }

  initTiles(tiles) {
    const L = window.L;
    // No zoom animation: the canvas is redrawn at each zoom step, so the tiles must not
    // glide under it.
    this.leaflet = L.map(this.box, { zoomAnimation: false, zoomControl: false, maxZoom: tiles.max_zoom, worldCopyJump: true });
    L.tileLayer(tiles.url, { maxZoom: tiles.max_zoom, attribution: escapeHtml(tiles.attribution) }).addTo(this.leaflet);
    // No view until there is something to show (`fit`, `centre` or `showWorld`): no tile is
    // fetched for a view nobody asked for.
    this.hasView = false;
    // Above the tiles (pane z-index 400), below the controls (1000).
    this.box.append(this.canvas);
    this.leaflet.on("move zoom viewreset resize", () => this.redraw());
    this.leaflet.on("click", (e) => { if (!this.tool) this.onClick(e.containerPoint.x, e.containerPoint.y); });
  }

  initPlane() {
    this.plane = null; // { lat0, lon0, cosLat, scale (px per metre), cx, cy (metres at the centre) }
    this.box.append(this.canvas);
    this.box.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoomPlane(e.deltaY < 0 ? 1.25 : 0.8, ...this.local(e));
    }, { passive: false });
    let drag = null;
    this.box.addEventListener("pointerdown", (e) => {
      if (this.tool || e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, moved: false };
      this.box.setPointerCapture(e.pointerId);
    });
    this.box.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
      drag.x = e.clientX; drag.y = e.clientY;
      if (drag.moved) this.pan(dx, dy);
    });
    this.box.addEventListener("pointerup", (e) => {
      const wasDrag = drag?.moved;
      if (!drag) return;
      drag = null;
      if (wasDrag) return;
      this.onClick(...this.local(e));
    });
    // Keyboard: arrows pan, + and - zoom (Leaflet does the same in the tile mode).
    this.box.addEventListener("keydown", (e) => {
      if (this.tool) return;
      const step = 60;
      const keys = {
        ArrowLeft: () => this.pan(step, 0), ArrowRight: () => this.pan(-step, 0),
        ArrowUp: () => this.pan(0, step), ArrowDown: () => this.pan(0, -step),
        "+": () => this.zoomBy(1.25), "=": () => this.zoomBy(1.25), "-": () => this.zoomBy(0.8),
      };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
  }

  /** Called when the map's page is shown again (its size may have changed while hidden). */
  shown() {
    this.leaflet?.invalidateSize(false);
    this.redraw();
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.leaflet?.remove();
  }

  // ---------- projection ----------

  ready() {
    return this.mode === "tiles" ? this.hasView : this.plane !== null;
  }

  /** Container pixels of a point. */
  toScreen(lat_udeg, lon_udeg) {
    if (this.mode === "tiles") {
      const p = this.leaflet.latLngToContainerPoint([lat_udeg / 1e6, lon_udeg / 1e6]);
      return [p.x, p.y];
    }
    const v = this.plane;
    const x = ((lon_udeg - v.lon0) / 1e6) * METRES_PER_DEG_LAT * v.cosLat;
    const y = ((lat_udeg - v.lat0) / 1e6) * METRES_PER_DEG_LAT;
    return [this.box.clientWidth / 2 + (x - v.cx) * v.scale, this.box.clientHeight / 2 - (y - v.cy) * v.scale];
  }

  /** The point under container pixels, in whole micro-degrees. */
  toLatLon(x, y) {
    if (this.mode === "tiles") {
      const p = this.leaflet.containerPointToLatLng([x, y]).wrap();
      return [Math.round(p.lat * 1e6), Math.round(p.lng * 1e6)];
    }
    const v = this.plane;
    const mx = v.cx + (x - this.box.clientWidth / 2) / v.scale;
    const my = v.cy - (y - this.box.clientHeight / 2) / v.scale;
    return [Math.round(v.lat0 + (my / METRES_PER_DEG_LAT) * 1e6), Math.round(v.lon0 + (mx / (METRES_PER_DEG_LAT * v.cosLat)) * 1e6)];
  }

  /** Pixels per metre around a latitude (the tiles' Mercator scale varies with it). */
  pixelsPerMetre(lat_udeg, lon_udeg) {
    if (this.mode === "plane") return this.plane.scale;
    const [x0, y0] = this.toScreen(lat_udeg, lon_udeg);
    const [x1, y1] = this.toScreen(lat_udeg + (1000 / METRES_PER_DEG_LAT) * 1e6, lon_udeg);
    return Math.hypot(x1 - x0, y1 - y0) / 1000;
  }

  /** Metres between two points (equirectangular: exact enough for a zone's radius). */
  static metresBetween([lat1, lon1], [lat2, lon2]) {
    const cos = Math.cos(((lat1 + lat2) / 2e6) * Math.PI / 180);
    return Math.hypot(((lat2 - lat1) / 1e6) * METRES_PER_DEG_LAT, ((lon2 - lon1) / 1e6) * METRES_PER_DEG_LAT * cos);
  }

  // ---------- view ----------

  /** Shows every point ([lat_udeg, lon_udeg]); nothing changes when there is none. */
  fit(points) {
    if (!points.length) return;
    const lats = points.map((p) => p[0]), lons = points.map((p) => p[1]);
    const south = Math.min(...lats), north = Math.max(...lats), west = Math.min(...lons), east = Math.max(...lons);
    if (this.mode === "tiles") {
      const pad = 500; // micro-degrees (about 55 m), so a single point has a neighbourhood
      this.leaflet.fitBounds([[(south - pad) / 1e6, (west - pad) / 1e6], [(north + pad) / 1e6, (east + pad) / 1e6]],
        { padding: [24, 24], maxZoom: ZOOM_FIT_MAX, animate: false });
      this.hasView = true;
      this.redraw();
      return;
    }
    const lat0 = (south + north) / 2, lon0 = (west + east) / 2;
    this.plane = { lat0, lon0, cosLat: Math.cos((lat0 / 1e6) * Math.PI / 180), cx: 0, cy: 0, scale: 1 };
    const w = Math.max(1, ((east - west) / 1e6) * METRES_PER_DEG_LAT * this.plane.cosLat);
    const h = Math.max(1, ((north - south) / 1e6) * METRES_PER_DEG_LAT);
    const margin = 1.1;
    this.plane.scale = Math.max(1e-4, Math.min(this.box.clientWidth / (w * margin + 400), this.box.clientHeight / (h * margin + 400)));
    this.redraw();
  }

  /** With nothing to show: the whole world on tiles, a sentence on the plane. */
  showWorld(text) {
    this.emptyText = text;
    if (this.mode === "tiles" && !this.hasView) {
      this.leaflet.setView([20, 0], 2, { animate: false });
      this.hasView = true;
    }
    this.redraw();
  }

  /** Centres the view on a point, close enough to see a home zone. */
  centre(lat_udeg, lon_udeg) {
    if (this.mode === "tiles") {
      this.leaflet.setView([lat_udeg / 1e6, lon_udeg / 1e6], Math.max(this.leaflet.getZoom(), 16), { animate: false });
      this.hasView = true;
      return;
    }
    if (!this.plane) this.fit([[lat_udeg, lon_udeg]]);
    const v = this.plane;
    v.cx = ((lon_udeg - v.lon0) / 1e6) * METRES_PER_DEG_LAT * v.cosLat;
    v.cy = ((lat_udeg - v.lat0) / 1e6) * METRES_PER_DEG_LAT;
    v.scale = Math.max(v.scale, 0.5);
    this.redraw();
  }

  zoomBy(factor) {
    if (this.mode === "tiles") {
      if (factor > 1) this.leaflet.zoomIn(1, { animate: false }); else this.leaflet.zoomOut(1, { animate: false });
      return;
    }
    this.zoomPlane(factor);
  }

  zoomPlane(factor, sx, sy) {
    const v = this.plane;
    if (!v) return;
    const w = this.box.clientWidth, h = this.box.clientHeight;
    sx ??= w / 2; sy ??= h / 2;
    // Keep the point under the cursor in place.
    const mx = v.cx + (sx - w / 2) / v.scale, my = v.cy - (sy - h / 2) / v.scale;
    v.scale = Math.min(50, Math.max(0.001, v.scale * factor));
    v.cx = mx - (sx - w / 2) / v.scale;
    v.cy = my + (sy - h / 2) / v.scale;
    this.redraw();
  }

  pan(dx, dy) {
    if (!this.plane) return;
    this.plane.cx -= dx / this.plane.scale;
    this.plane.cy += dy / this.plane.scale;
    this.redraw();
  }

  /** Container pixels of a pointer event (inside the border, as Leaflet counts them). */
  local(e) {
    const rect = this.box.getBoundingClientRect();
    return [e.clientX - rect.left - this.box.clientLeft, e.clientY - rect.top - this.box.clientTop];
  }

  /** The person drawn nearest to container pixels (x, y), within a few pixels, or null. */
  hit(x, y) {
    let best = null, bestD = HIT_RADIUS_PX ** 2;
    for (const p of this.layers.people) {
      if (p._x === undefined) continue;
      const d = (p._x - x) ** 2 + (p._y - y) ** 2;
      if (d <= bestD) { best = p; bestD = d; }
    }
    return best;
  }

  // ---------- drawing the picture ----------

  /** Replaces some layers (zones, people, track, selected) and redraws. */
  set(layers) {
    Object.assign(this.layers, layers);
    this.redraw();
  }

  redraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = null; this.paint(); });
  }

  paint() {
    const canvas = this.canvas;
    const width = this.box.clientWidth, height = this.box.clientHeight;
    if (!width || !height) return;
    const t0 = performance.now();
    const ratio = window.devicePixelRatio || 1;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    if (this.mode === "plane") {
      ctx.fillStyle = "#f4f6f8";
      ctx.fillRect(0, 0, width, height);
    } else {
      ctx.clearRect(0, 0, width, height);
    }
    if (!this.ready()) {
      if (this.mode === "plane") {
        ctx.fillStyle = "#5b6470";
        ctx.font = "14px system-ui, sans-serif";
        ctx.fillText(this.emptyText ?? "Loading…", 16, 28);
      }
      this.afterDraw(0);
      return;
    }
    for (const z of this.layers.zones) this.paintZone(ctx, z, width, height);
    this.paintTrack(ctx);
    const placed = this.paintPeople(ctx, width, height);
    if (this.tool) this.paintDraft(ctx);
    this.paintScale(ctx, width, height);
    this.lastDrawMs = performance.now() - t0;
    this.draws++;
    this.box.dataset.draws = String(this.draws);
    this.afterDraw(placed);
  }

  /** Keep-inside in blue, keep-outside in red; a zone not saved yet dashed in orange. */
  paintZone(ctx, z, width, height) {
    const unsaved = Boolean(z.unsaved);
    ctx.lineWidth = unsaved ? 2.5 : 1.5;
    ctx.setLineDash(unsaved ? [6, 4] : []);
    ctx.strokeStyle = unsaved ? "#b45309" : z.rule === "keep-outside" ? "rgba(198,40,40,.8)" : "rgba(18,53,91,.7)";
    ctx.fillStyle = z.rule === "keep-outside" ? "rgba(198,40,40,.10)" : "rgba(18,53,91,.08)";
    ctx.beginPath();
    if (z.circle) {
      const [x, y] = this.toScreen(z.circle.lat_udeg, z.circle.lon_udeg);
      const r = Math.max(1, z.circle.radius_m * this.pixelsPerMetre(z.circle.lat_udeg, z.circle.lon_udeg));
      if (x + r < 0 || y + r < 0 || x - r > width || y - r > height) { ctx.setLineDash([]); return; }
      ctx.arc(x, y, r, 0, 2 * Math.PI);
    } else if (z.polygon?.length) {
      z.polygon.forEach(([lat, lon], i) => {
        const [x, y] = this.toScreen(lat, lon);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.closePath();
    }
    ctx.fill();
    ctx.stroke();
    ctx.setLineDash([]);
  }

  /** A track: the path through the fixes, oldest to newest, the newest ringed. */
  paintTrack(ctx) {
    const track = this.layers.track;
    if (!track.length) return;
    const points = track.map(([lat, lon]) => this.toScreen(lat, lon));
    ctx.strokeStyle = "#6a1b9a";
    ctx.lineWidth = 3;
    ctx.lineJoin = "round";
    ctx.beginPath();
    points.forEach(([x, y], i) => { if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y); });
    ctx.stroke();
    ctx.fillStyle = "#6a1b9a";
    for (const [x, y] of points) { ctx.beginPath(); ctx.arc(x, y, 2.5, 0, 2 * Math.PI); ctx.fill(); }
    const [x, y] = points.at(-1);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(x, y, 6, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }

  /** People: calm ones first, alerted ones on top and larger. Returns how many have a position. */
  paintPeople(ctx, width, height) {
    const byLevel = [[], [], []];
    let placed = 0;
    for (const p of this.layers.people) {
      if (p.lat_udeg === undefined) { p._x = undefined; continue; }
      placed++;
      const [x, y] = this.toScreen(p.lat_udeg, p.lon_udeg);
      p._x = x; p._y = y;
      if (x < -10 || y < -10 || x > width + 10 || y > height + 10) continue;
      byLevel[Math.min(2, p._level ?? 0)].push(p);
    }
    byLevel.forEach((list, level) => {
      const r = level ? 5 : 3;
      ctx.fillStyle = LEVEL_COLOURS[level];
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (const p of list) { ctx.moveTo(p._x + r, p._y); ctx.arc(p._x, p._y, r, 0, 2 * Math.PI); }
      ctx.fill();
      ctx.stroke();
    });
    const selected = this.layers.selected && this.layers.people.find((q) => q.person === this.layers.selected);
    if (selected?._x !== undefined) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(selected._x, selected._y, 9, 0, 2 * Math.PI);
      ctx.stroke();
    }
    return placed;
  }

  /** A scale bar of a round length (1, 2 or 5 × 10^k metres) about a fifth of the width. */
  paintScale(ctx, width, height) {
    const [lat, lon] = this.toLatLon(width / 2, height / 2);
    const perMetre = this.pixelsPerMetre(lat, lon);
    const target = width / 5 / perMetre;
    const pow = 10 ** Math.floor(Math.log10(target));
    const metres = [5, 2, 1].map((m) => m * pow).find((m) => m <= target) ?? pow;
    const px = metres * perMetre;
    const x = 16, y = height - (this.mode === "tiles" ? 30 : 18);
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
    this.box.dataset.scale = label;
  }

  // ---------- the drawing tool ----------

  /**
   * Draws one zone: `kind` "circle" (press at the centre, drag to the radius) or "polygon"
   * (click each vertex; the first vertex again, Enter or a double-click closes it; Backspace
   * takes the last one back). Escape cancels. Resolves with `{circle}` or `{polygon}` in the
   * contract's units, or null when cancelled.
   */
  draw(kind, onProgress = () => {}) {
    this.cancelDrawing();
    return new Promise((resolve) => {
      this.tool = { kind, centre: null, edge: null, vertices: [], hover: null, resolve, onProgress };
      this.box.classList.add("drawing");
      this.box.dataset.drawing = kind;
      if (this.leaflet) { this.leaflet.dragging.disable(); this.leaflet.doubleClickZoom.disable(); }
      this.redraw();
    });
  }

  cancelDrawing() {
    this.finishDrawing(null);
  }

  finishDrawing(shape) {
    const tool = this.tool;
    if (!tool) return;
    this.tool = null;
    this.box.classList.remove("drawing");
    delete this.box.dataset.drawing;
    if (this.leaflet) { this.leaflet.dragging.enable(); this.leaflet.doubleClickZoom.enable(); }
    this.redraw();
    tool.resolve(shape);
  }

  initDrawing() {
    const at = (e) => {
      const [x, y] = this.local(e);
      return { x, y, point: this.toLatLon(x, y) };
    };
    // Presses on Leaflet's controls (zoom, attribution link) are theirs.
    const mine = (e) => this.tool && this.ready() && e.button === 0 && !e.target.closest?.(".leaflet-control-container");
    this.box.addEventListener("pointerdown", (e) => {
      if (!mine(e)) return;
      e.preventDefault();
      e.stopPropagation();
      const tool = this.tool;
      const p = at(e);
      tool.down = p;
      if (tool.kind === "circle") { tool.centre = p; tool.edge = p; }
      this.box.setPointerCapture?.(e.pointerId);
      this.redraw();
    }, true);
    this.box.addEventListener("pointermove", (e) => {
      const tool = this.tool;
      if (!tool || !this.ready()) return;
      const p = at(e);
      if (tool.kind === "circle" && tool.centre && tool.down) tool.edge = p;
      tool.hover = p;
      this.redraw();
    }, true);
    this.box.addEventListener("pointerup", (e) => {
      const tool = this.tool;
      if (!tool || !tool.down) return;
      e.stopPropagation();
      const p = at(e);
      const start = tool.down;
      tool.down = null;
      if (tool.kind === "circle") {
        if (Math.hypot(p.x - start.x, p.y - start.y) < DRAW_RADIUS_MIN_PX) {
          tool.centre = null;
          tool.onProgress("Press at the centre and drag out to the radius.");
          this.redraw();
          return;
        }
        const [lat_udeg, lon_udeg] = tool.centre.point;
        const radius_m = Math.max(1, Math.round(MapView.metresBetween(tool.centre.point, p.point)));
        this.finishDrawing({ circle: { lat_udeg, lon_udeg, radius_m } });
        return;
      }
      if (Math.hypot(p.x - start.x, p.y - start.y) > CLICK_SLOP_PX) return;
      const vertices = tool.vertices;
      const first = vertices[0];
      if (vertices.length >= 3 && Math.hypot(p.x - first.x, p.y - first.y) <= HIT_RADIUS_PX) { this.closePolygon(); return; }
      const last = vertices.at(-1);
      if (last && Math.hypot(p.x - last.x, p.y - last.y) <= CLICK_SLOP_PX) return; // a double-click's second press
      vertices.push(p);
      tool.onProgress(`${vertices.length} vertices; click the first one again, press Enter or double-click to close.`);
      if (vertices.length >= DRAW_VERTICES_MAX) this.closePolygon();
      this.redraw();
    }, true);
    this.box.addEventListener("dblclick", (e) => {
      if (this.tool?.kind !== "polygon") return;
      e.preventDefault();
      e.stopPropagation();
      this.closePolygon();
    }, true);
    this.box.addEventListener("keydown", (e) => {
      const tool = this.tool;
      if (!tool) return;
      if (e.key === "Escape") { e.preventDefault(); this.cancelDrawing(); }
      if (e.key === "Enter" && tool.kind === "polygon") { e.preventDefault(); this.closePolygon(); }
      if (e.key === "Backspace" && tool.kind === "polygon") { e.preventDefault(); tool.vertices.pop(); this.redraw(); }
    }, true);
  }

  closePolygon() {
    const tool = this.tool;
    if (tool?.kind !== "polygon") return;
    if (tool.vertices.length < 3) { tool.onProgress("A polygon needs at least 3 vertices."); return; }
    this.finishDrawing({ polygon: tool.vertices.map((v) => v.point) });
  }

  paintDraft(ctx) {
    const tool = this.tool;
    ctx.strokeStyle = "#b45309";
    ctx.fillStyle = "rgba(180,83,9,.12)";
    ctx.lineWidth = 2.5;
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    if (tool.kind === "circle" && tool.centre) {
      // Recomputed from the points, so the circle stays put while the map moves.
      const [cx, cy] = this.toScreen(...tool.centre.point);
      const r = MapView.metresBetween(tool.centre.point, tool.edge.point) * this.pixelsPerMetre(...tool.centre.point);
      ctx.arc(cx, cy, r, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    } else if (tool.kind === "polygon" && tool.vertices.length) {
      const screen = tool.vertices.map((v) => this.toScreen(...v.point));
      screen.forEach(([x, y], i) => { if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y); });
      if (tool.hover) ctx.lineTo(tool.hover.x, tool.hover.y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#b45309";
      for (const [x, y] of screen) { ctx.beginPath(); ctx.arc(x, y, 4, 0, 2 * Math.PI); ctx.fill(); }
    }
    ctx.setLineDash([]);
  }
}
