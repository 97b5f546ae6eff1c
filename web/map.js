// The operators' map: pseudonymous people at their last position, their geofences and their
// alert state, on the map component (mapview.js: over the node's tile server when one is
// configured, on a local plane otherwise). Positions come from `GET /api/map` (polled), zones
// from `GET /api/map/zones`; alert state follows the live stream at once.

import { $, api, el, state, LEVELS, liveLevel, liveLevels, personLink, short } from "./util.js";
import { MapView, mapConfig } from "./mapview.js";

const POLL_MS = 2000;
const ZONES_POLL_MS = 30_000;

const map = {
  people: [],
  zones: [],
  loaded: false,
  fitted: false,
  timer: null,
  zonesAt: 0,
  /** The map component, made at the first opening (the tile server is known only then). */
  view: null,
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
  if (!map.view) {
    let tiles = null;
    try {
      ({ tiles } = await mapConfig());
    } catch (e) {
      $("map-status").replaceChildren(el("span", { class: "error" }, e.message));
      return;
    }
    if (map.view) return; // opened twice meanwhile
    map.view = new MapView($("map-canvas"), {
      label: "Map of people and geofences; the list beside it names the people in alert",
      tiles,
      onClick: (x, y) => {
        const best = map.view.hit(x, y);
        map.selected = best?.person ?? null;
        describe(best);
        draw();
      },
    });
    map.view.afterDraw = summarise;
    $("map-help").textContent = tiles
      ? "Drag or use the arrow keys to pan, the wheel or + / − to zoom."
      : "A local plane (no map tiles are configured on this node). Drag or use the arrow keys to pan, the wheel or + / − to zoom.";
  } else {
    map.view.shown();
  }
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
    map.loaded = true;
    if (!map.fitted) fit();
    draw();
  } catch (e) {
    $("map-status").replaceChildren(el("span", { class: "error" }, e.message));
  }
}

function points() {
  const all = [];
  for (const p of map.people) if (p.lat_udeg !== undefined) all.push([p.lat_udeg, p.lon_udeg]);
  for (const z of map.zones) {
    if (z.circle) all.push([z.circle.lat_udeg, z.circle.lon_udeg]);
    for (const v of z.polygon ?? []) all.push(v);
  }
  return all;
}

function fit() {
  const all = points();
  if (all.length) { map.view.fit(all); map.fitted = true; }
  else map.view.showWorld(map.loaded ? "No positions or zones yet: they appear as phones report." : "Loading…");
}

/** Levels from the live alert state, then the picture. */
export function draw() {
  if (!map.view || !mapVisible()) return;
  const live = liveLevels();
  for (const p of map.people) p._level = Math.min(2, live.get(p.person) ?? p.level ?? 0);
  map.view.set({ people: map.people, zones: map.zones, selected: map.selected });
}

function summarise(placed) {
  const view = map.view;
  map.lastDrawMs = view.lastDrawMs;
  map.draws = view.draws;
  if (map.drawLog.length < 10_000) map.drawLog.push([Date.now(), map.lastDrawMs, map.people.length]);
  const counts = [0, 0, 0];
  for (const p of map.people) counts[p._level ?? 0]++;
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
  if (p?.lat_udeg !== undefined) map.view.centre(p.lat_udeg, p.lon_udeg);
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

export function initMap() {
  $("map-zoom-in").addEventListener("click", () => map.view?.zoomBy(1.5));
  $("map-zoom-out").addEventListener("click", () => map.view?.zoomBy(1 / 1.5));
  $("map-fit").addEventListener("click", () => { if (map.view) { map.fitted = false; fit(); draw(); } });
  // "0" fits everything, from the keyboard too.
  $("map-canvas").addEventListener("keydown", (e) => {
    if (e.key === "0" && map.view && !map.view.tool) { e.preventDefault(); map.fitted = false; fit(); draw(); }
  });
  state.onAlertsChanged.push(() => { if (mapVisible()) draw(); });
}
