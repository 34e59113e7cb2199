// lab3's page: the listing, locks, link state, both servers' actions and
// the kept versions, kept live from /api/listing, /api/status,
// /api/versions and the /api/events stream.
// Names are only ever put in the page as text (never as HTML).
"use strict";

const csrf = document.querySelector('meta[name="lab3-csrf"]').content;
const $ = (sel) => document.querySelector(sel);
const state = {
  files: [], peer: "connected", queues: {}, status: null,
  sort: { key: "name", dir: 1 }, filter: "", known: null,
  transfers: new Map(), aAway: false,
  // The versions view: of one file (its path), or of every file ("").
  versionsOf: "", versions: [], versionsPeer: "connected",
};
const MAX_ACTIVITY = 200;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

function size(n) {
  if (n < 1024) return n + " B";
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return v.toFixed(1) + " " + units[u];
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3,
});
function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " days ago";
}
function when(iso) { return iso ? dateTime.format(new Date(iso)) + " (" + ago(iso) + ")" : "not yet"; }

function toast(text, isError) {
  const t = $("#toast");
  t.textContent = text;
  t.className = isError ? "error" : "";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, isError ? 6000 : 3000);
}

function serverA(away) {
  state.aAway = away;
  $("#banner-a").hidden = !away;
}

async function getJson(url) {
  let r;
  try { r = await fetch(url, { cache: "no-store" }); } catch (e) { serverA(true); return null; }
  if (r.status === 401) { location.reload(); return null; }
  if (!r.ok) { serverA(false); toast((await r.json().catch(() => ({}))).error || r.statusText, true); return null; }
  serverA(false);
  return r.json();
}

async function post(url, body) {
  let r;
  try {
    r = await fetch(url, {
      method: "POST", cache: "no-store",
      headers: { "Content-Type": "application/json", "X-Lab3-Csrf": csrf },
      body: JSON.stringify(body),
    });
  } catch (e) { serverA(true); throw new Error("Server A is not answering"); }
  if (r.status === 401) { location.reload(); throw new Error("signed out"); }
  const doc = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(doc.error || r.statusText);
  return doc;
}

async function loadListing() {
  const doc = await getJson("/api/listing");
  if (!doc) return;
  const before = state.known;
  state.known = new Set(doc.files.map((f) => f.name));
  state.files = doc.files;
  state.peer = doc.peer;
  state.queues = doc.queues || {};
  renderFiles(before);
}

async function loadStatus() {
  const doc = await getJson("/api/status");
  if (!doc) return;
  state.status = doc;
  renderStatus();
}

function sorted(files) {
  const { key, dir } = state.sort;
  const pick = {
    name: (f) => f.index, size: (f) => f.size, modified: (f) => f.modified_ms,
    where: (f) => f.where,
  }[key];
  return files.slice().sort((a, b) => {
    const x = pick(a), y = pick(b);
    return (x < y ? -1 : x > y ? 1 : a.index - b.index) * dir;
  });
}

function versionsButton(f) {
  const b = el("button", { class: "versions quiet", type: "button" }, "Versions");
  b.addEventListener("click", () => showVersions(f.name));
  return b;
}

function lockCell(f) {
  const td = el("td", { class: "lock" });
  if (!f.locked) {
    const b = el("button", { class: "lock", type: "button" }, "Lock");
    b.addEventListener("click", () => act(b, "lock", f.name));
    td.append(b, versionsButton(f));
    return td;
  }
  td.append(el("span", { class: "badge" }, "locked"));
  const q = state.queues[f.name] || [];
  if (f.queued > 0) td.append(el("span", { class: "badge queued" }, f.queued + " queued"));
  const b = el("button", { class: "unlock", type: "button" }, "Unlock");
  b.addEventListener("click", () => act(b, "unlock", f.name));
  td.append(b, versionsButton(f));
  if (q.length) {
    const ol = el("ol", { class: "queue", "aria-label": "queued updates from server B" });
    for (const u of q) {
      const what = u.kind === "delete" ? "delete" : "write, " + size(u.size);
      ol.append(el("li", {}, "#" + u.seq + " " + what + " — " + dateTime.format(new Date(u.time_ns / 1e6))));
    }
    td.append(ol);
  }
  return td;
}

function renderFiles(before) {
  const tbody = $("#files tbody");
  const needle = state.filter.toLowerCase();
  const rows = sorted(state.files).filter((f) => f.name.toLowerCase().includes(needle));
  tbody.replaceChildren(...rows.map((f) => {
    const tr = el("tr", { "data-name": f.name, "data-index": f.index });
    if (f.locked) tr.classList.add("locked");
    if (before && !before.has(f.name)) tr.classList.add("fresh");
    tr.append(
      el("td", { class: "name" }, f.name),
      el("td", { class: "size", title: f.size + " bytes" }, size(f.size)),
      el("td", { class: "modified", title: f.modified }, dateTime.format(new Date(f.modified_ms))),
      el("td", { class: "where" }, f.where),
      lockCell(f),
    );
    return tr;
  }));
  $("#empty").hidden = rows.length > 0;
  $("#empty").textContent = state.files.length ? "No file matches the filter." : "No files.";
  const total = state.files.reduce((s, f) => s + f.size, 0);
  $("#summary").textContent = state.files.length + (state.files.length === 1 ? " file, " : " files, ")
    + size(total) + " in all; server B " + state.peer;
  $("#banner-b").hidden = state.peer !== "unreachable";
  renderLinkBanner();
  for (const th of document.querySelectorAll("#files th[data-sort]")) {
    th.setAttribute("aria-sort", th.dataset.sort === state.sort.key
      ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
}

function renderLinkBanner() {
  const s = state.status, banner = $("#banner-link");
  const down = s && s.sync && !s.link.up && state.peer !== "unreachable";
  banner.hidden = !down;
  if (down) banner.textContent = "The sync link to Server B is down"
    + (s.link.since ? " since " + when(s.link.since) : "") + ": changes wait until it is back.";
}

function renderStatus() {
  const s = state.status, dl = $("#status");
  const link = !s.sync ? el("span", {}, "none (--no-sync)")
    : s.link.up ? el("span", { class: "up" }, "up" + (s.link.since ? " since " + when(s.link.since) : ""))
    : el("span", { class: "down" }, "down" + (s.link.since ? " since " + when(s.link.since) : " (never up yet)"));
  let skew = "unknown";
  const ns = s.link.clock_skew_ns;
  if (ns !== null && ns !== undefined) {
    const ms = Math.abs(ns) / 1e6;
    skew = ms < 1 ? "under 1 ms" : (ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s")
      + (ns > 0 ? " (B ahead)" : " (B behind)") + (ms > 1000 ? " — set both clocks by NTP" : "");
  }
  const rows = [
    ["Server B", s.server_b], ["Link", link], ["Clock skew", skew],
    ["Last reconcile", when(s.link.last_reconcile)],
    ["Transfers", s.link.sending + " sending, " + s.link.receiving + " receiving"],
    ["Locks", s.locks.length ? s.locks.map((l) => l.name + " (" + l.queued + " queued)").join(", ") : "none"],
  ];
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  renderLinkBanner();
}

function renderTransfers() {
  const ul = $("#transfers");
  $("#transfers-section").classList.toggle("idle", !state.transfers.size);
  if (!state.transfers.size) { ul.replaceChildren(el("li", { class: "none" }, "none")); return; }
  ul.replaceChildren(...[...state.transfers.values()].map((t) => {
    const pct = t.total ? Math.min(100, Math.floor((t.done * 100) / t.total)) : 0;
    return el("li", { class: "transfer", "data-path": t.path },
      el("div", {}, t.direction + " " + t.path),
      el("progress", { max: "100", value: String(pct) }),
      el("div", { class: "muted" }, size(t.done) + " of " + size(t.total) + " (" + pct + "%)"));
  }));
}

const FILE_ACTIONS = new Set(["created", "updated", "deleted", "renamed", "conflict", "queued",
  "applied", "superseded", "failed", "locked", "unlocked", "restored"]);
const KEEPING_ACTIONS = new Set(["updated", "deleted", "conflict", "applied", "restored"]);

function onAction(a) {
  const li = el("li", {},
    el("span", { class: "time" }, clock.format(new Date(a.time_ns / 1e6))),
    el("span", { class: "side" }, "[" + a.side + "]"),
    a.direction + " ", el("span", { class: "act " + a.action.replace(/\W/g, "") }, a.action), " " + a.path,
    a.size !== undefined && a.action !== "progress" ? "  " + size(a.size) : "",
    a.detail ? "  (" + a.detail + ")" : "");
  const ol = $("#activity");
  ol.querySelector(".none")?.remove();
  ol.prepend(li);
  while (ol.children.length > MAX_ACTIVITY) ol.lastChild.remove();

  // One bar per file: both servers announce the same transfer (one sends,
  // the other receives); the bar shows the further of the two.
  const key = a.direction + " " + a.path;
  if (a.action === "sending" || a.action === "receiving" || a.action === "progress") {
    if (a.action !== "progress") soon(loadStatus);
    const t = state.transfers.get(key) || {
      path: a.path, direction: a.direction, total: a.size || parseTotal(a.detail), done: 0,
    };
    if (a.action === "progress") t.done = Math.max(t.done, a.size || 0);
    state.transfers.set(key, t);
    renderTransfers();
  } else if (a.action === "error" || (FILE_ACTIONS.has(a.action) && a.side !== a.direction.slice(0, 1))) {
    // Done once the receiving side has applied it (or on an error).
    if (state.transfers.delete(key)) renderTransfers();
  }
  if (FILE_ACTIONS.has(a.action)) soon(loadListing);
  // What may have kept a version (a walk of both sides' versions: not too often).
  if (KEEPING_ACTIONS.has(a.action)) soon(loadVersions, 1000);
  if (a.action === "link up" || a.action === "link down" || FILE_ACTIONS.has(a.action)) soon(loadStatus);
  // Server B coming or going changes what the listing can show.
  if (a.action === "link up" || a.action === "link down") soon(loadListing);
}

// "42% of 1.0 GiB": the total, for a transfer first seen mid-way.
function parseTotal(detail) {
  const m = /of ([\d.]+) (B|KiB|MiB|GiB|TiB)/.exec(detail || "");
  if (!m) return 0;
  return parseFloat(m[1]) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].indexOf(m[2]);
}

const pending = new Map();
function soon(fn, ms) {
  if (pending.has(fn)) return;
  pending.set(fn, setTimeout(() => { pending.delete(fn); fn(); }, ms || 150));
}

async function act(button, what, name) {
  button.disabled = true;
  try {
    const doc = await post("/api/" + what, { name });
    if (what === "lock") toast("locked " + doc.locked);
    else {
      const n = doc.updates.length;
      const applied = doc.updates.filter((u) => u.outcome === "applied").length;
      toast("unlocked " + doc.unlocked + (n ? ": " + applied + " of " + n + " queued updates applied" : ""));
    }
  } catch (e) {
    toast(what + " " + name + ": " + e.message, true);
  }
  await Promise.all([loadListing(), loadStatus()]);
}

async function loadVersions() {
  const of = state.versionsOf;
  const doc = await getJson("/api/versions" + (of ? "?path=" + encodeURIComponent(of) : ""));
  if (!doc || of !== state.versionsOf) return;
  state.versions = doc.versions;
  state.versionsPeer = doc.peer;
  state.versionsMore = doc.more;
  renderVersions();
}

function renderVersions() {
  const of = state.versionsOf;
  $("#versions-title").textContent = of ? "Versions of " + of : "Versions of every file";
  $("#versions tbody").replaceChildren(...state.versions.map((v) => {
    const b = el("button", { class: "restore", type: "button" }, "Restore");
    b.addEventListener("click", () => restoreVersion(b, v));
    return el("tr", { "data-id": v.id, "data-path": v.path },
      el("td", { class: "name" }, v.path),
      el("td", { class: "side" }, v.side.toUpperCase()),
      el("td", { class: "kept", title: v.kept }, dateTime.format(new Date(v.kept_ms))),
      el("td", { class: "why" }, v.why),
      el("td", { class: "size", title: v.size + " bytes" }, size(v.size)),
      el("td", { class: "mtime", title: "modified " + v.modified }, dateTime.format(new Date(v.modified_ms))),
      el("td", { class: "restore" }, b));
  }));
  const empty = $("#versions-empty");
  empty.hidden = state.versions.length > 0;
  empty.textContent = "No kept versions" + (of ? " of " + of : "")
    + (state.versionsPeer === "unreachable" ? " at Server A; Server B is away." : ".");
  const more = $("#versions-more");
  more.hidden = !state.versions.length || (!state.versionsMore && state.versionsPeer !== "unreachable");
  more.textContent = state.versionsMore
    ? "Only the newest " + state.versions.length + " are shown: type a file's path to see all of its versions."
    : "Server B is away: only Server A's versions are shown.";
}

function showVersions(path) {
  state.versionsOf = path;
  $("#versions-path").value = path;
  state.versions = [];
  renderVersions();
  loadVersions();
  $("#versions-section").scrollIntoView({ block: "start" });
}

async function restoreVersion(button, v) {
  button.disabled = true;
  try {
    const doc = await post("/api/restore", { path: v.path, version: v.id });
    toast("restored " + doc.restored + " at server " + doc.version.side.toUpperCase()
      + " from version " + doc.version.id + " (" + doc.version.why + "); it syncs as a new change");
  } catch (e) {
    toast("restore " + v.path + ": " + e.message, true);
    button.disabled = false;
  }
  await Promise.all([loadVersions(), loadListing()]);
}

function listen() {
  const es = new EventSource("/api/events");
  es.addEventListener("action", (e) => onAction(JSON.parse(e.data)));
  es.addEventListener("open", () => {
    if (state.aAway) { loadListing(); loadStatus(); }
    serverA(false);
  });
  es.addEventListener("error", () => serverA(true));
}

for (const th of document.querySelectorAll("#files th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => {
    const key = th.dataset.sort;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
    renderFiles(null);
  });
}
$("#filter").addEventListener("input", (e) => { state.filter = e.target.value; renderFiles(null); });
$("#versions-form").addEventListener("submit", (e) => {
  e.preventDefault();
  showVersions($("#versions-path").value.trim());
});
$("#activity").append(el("li", { class: "none" }, "waiting for actions…"));

loadListing();
loadStatus();
loadVersions();
listen();
// Live updates come from the event stream; these catch what it cannot say
// (the "ago" times; changes made with --no-sync). The listing asks Server
// B for its folder each time, so it is polled rarely.
setInterval(loadStatus, 5000);
setInterval(loadListing, 30000);
