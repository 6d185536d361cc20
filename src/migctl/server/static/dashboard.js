// migctl dashboard: polls GET v1/dashboard every refresh_s seconds and redraws the page.
//
// Authentication is the API's own. On the Unix socket (reached through `ssh -L` or a local
// proxy) the kernel names the user and no token is needed. Over TCP the page needs a bearer
// token: typed into the form, or given once as `#token=...` in the address (a fragment never
// leaves the browser: not in server logs, not in Referer headers); it is kept in this tab's
// sessionStorage and sent in an Authorization header. Never in a cookie: a cookie would be sent
// with requests that other web sites make the browser send to the daemon (CSRF).
//
// Every string from the daemon goes into the page through textContent, never as HTML.
"use strict";

const TOKEN_KEY = "migctl.dashboard.token";
const FEED_URL = "v1/dashboard";
const DEFAULT_REFRESH_S = 2;
const MIB_PER_GIB = 1024;
const PALETTE = [
  "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2",
  "#edc948", "#ff9da7", "#9c755f", "#2f9e9e", "#8c6bb1", "#d4a017",
];
const OTHER_USER = "another user";
const OTHER_COLOUR = "#7a8794";

let timer = null;
let colours = new Map(); // holder -> colour, assigned at each render
let generation = 0; // a new token starts a new polling loop; the old one stops

// -- small DOM helpers ------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function cell(row, text, className) {
  const td = el("td", className, text);
  row.appendChild(td);
  return td;
}

function gib(mib) {
  return (mib / MIB_PER_GIB).toFixed(1);
}

function memoryText(usedMib, totalMib) {
  return `${gib(usedMib)} / ${gib(totalMib)} GiB`;
}

function ago(epochSeconds, now) {
  const seconds = Math.max(0, Math.round(now - epochSeconds));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleString();
}

// -- tenants and colours ------------------------------------------------------------------

function holderOf(lease) {
  if (!lease) return null;
  return lease.redacted ? OTHER_USER : lease.user;
}

function hashOf(text) {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash;
}

// Each holder keeps the palette slot its name hashes to (stable across refreshes); a holder
// whose slot is taken gets the next free one, so tenants on screen never share a colour.
function assignColours(holders) {
  const assigned = new Map();
  const used = new Set();
  for (const holder of [...new Set(holders)].sort()) {
    if (holder === OTHER_USER) continue;
    let slot = hashOf(holder) % PALETTE.length;
    while (used.has(slot) && used.size < PALETTE.length) slot = (slot + 1) % PALETTE.length;
    used.add(slot);
    assigned.set(holder, PALETTE[slot]);
  }
  return assigned;
}

function colourOf(holder) {
  return colours.get(holder) || OTHER_COLOUR;
}

function deviceState(device) {
  if (device.lease) return "leased";
  return device.pids.length > 0 ? "busy" : "idle";
}

// -- GPUs ---------------------------------------------------------------------------------

function deviceBox(device, weight, giProfile) {
  const state = deviceState(device);
  const holder = holderOf(device.lease);
  const box = el("div", `device ${state}`);
  box.dataset.uuid = device.uuid;
  box.dataset.state = state;
  box.style.flexGrow = String(weight);
  if (holder) {
    box.dataset.holder = holder;
    box.style.backgroundColor = colourOf(holder);
  }
  box.title = [
    device.uuid,
    `${device.ci_profile} (GI ${device.gi_id}, CI ${device.ci_id})`,
    `memory ${memoryText(device.memory_used_mib, device.memory_total_mib)}`,
    holder ? `leased by ${holder} (lease ${device.lease.lease_id})` : state,
    `${device.pids.length} process(es)`,
  ].join("\n");
  const who = holder || (state === "busy" ? "busy, no lease" : "idle");
  // the GI's label names its profile; a CI that is only part of its GI names its own
  const own = device.ci_profile !== giProfile ? ` · ${device.ci_profile}` : "";
  box.appendChild(el("span", "device-holder", `${who}${own}`));
  box.appendChild(el("span", "device-memory", memoryText(device.memory_used_mib, device.memory_total_mib)));
  box.appendChild(el("span", "device-uuid", device.uuid));
  return box;
}

function instanceBox(gi) {
  const { start, size } = gi.placement;
  const box = el("div", "gi");
  box.dataset.gi = String(gi.id);
  box.dataset.profile = gi.profile;
  box.dataset.start = String(start);
  box.dataset.size = String(size);
  box.style.gridColumn = `${start + 1} / span ${size}`;
  const last = start + size - 1;
  const where = size > 1 ? ` · slices ${start}-${last}` : ""; // one slice: the ruler says which
  box.appendChild(el("div", "gi-label", `GI ${gi.id} · ${gi.profile}${where}`));
  box.title = `GI ${gi.id} · ${gi.profile} · memory slices ${start}-${last}`;
  const devices = el("div", "gi-devices");
  const weightOf = new Map(gi.compute_instances.map((ci) => [ci.id, ci.placement.size]));
  for (const device of gi.mig_devices) {
    devices.appendChild(deviceBox(device, weightOf.get(device.ci_id) || 1, gi.profile));
  }
  if (gi.mig_devices.length === 0) devices.appendChild(el("div", "device idle", "no compute instance"));
  box.appendChild(devices);
  return box;
}

function freeSlices(gpu) {
  const taken = new Array(gpu.memory_slices).fill(false);
  for (const gi of gpu.gpu_instances) {
    for (let s = gi.placement.start; s < gi.placement.start + gi.placement.size; s += 1) taken[s] = true;
  }
  const boxes = [];
  taken.forEach((isTaken, slice) => {
    if (isTaken) return;
    const box = el("div", "free", "free");
    box.dataset.slice = String(slice);
    box.style.gridColumn = `${slice + 1} / span 1`;
    boxes.push(box);
  });
  return boxes;
}

function sliceBar(gpu) {
  const bar = el("div", "slices");
  bar.style.gridTemplateColumns = `repeat(${gpu.memory_slices}, minmax(0, 1fr))`;
  for (let s = 0; s < gpu.memory_slices; s += 1) {
    const number = el("div", "slice-number", s);
    number.style.gridColumn = `${s + 1} / span 1`;
    bar.appendChild(number);
  }
  for (const gi of gpu.gpu_instances) bar.appendChild(instanceBox(gi));
  for (const free of freeSlices(gpu)) bar.appendChild(free);
  return bar;
}

function wholeGpu(gpu) {
  const bar = el("div", "slices whole");
  const busy = gpu.processes.length > 0;
  const text = gpu.mig && gpu.mig.current ? "MIG on, no memory slices known" : "MIG off: the whole GPU";
  const box = el("div", busy ? "device busy" : "device idle", `${text} · ${gpu.processes.length} process(es)`);
  bar.appendChild(box);
  return bar;
}

function gpuCard(gpu) {
  const card = el("article", "gpu");
  card.dataset.gpu = String(gpu.index);
  card.dataset.uuid = gpu.uuid;
  const head = el("div", "gpu-head");
  head.appendChild(el("span", "gpu-name", `GPU ${gpu.index} · ${gpu.name}`));
  head.appendChild(el("span", "gpu-uuid", gpu.uuid));
  if (gpu.mig && gpu.mig.pending !== gpu.mig.current) {
    head.appendChild(el("span", "badge", `MIG ${gpu.mig.pending ? "on" : "off"} after reset`));
  }
  const memory = el("span", "gpu-memory", memoryText(gpu.memory_used_mib, gpu.memory_total_mib));
  const meter = el("span", "meter");
  const fill = el("span", "meter-fill");
  fill.style.width = `${Math.min(100, (100 * gpu.memory_used_mib) / Math.max(1, gpu.memory_total_mib))}%`;
  meter.appendChild(fill);
  head.appendChild(memory);
  head.appendChild(meter);
  card.appendChild(head);
  const sliced = gpu.mig && gpu.mig.current && gpu.memory_slices;
  card.appendChild(sliced ? sliceBar(gpu) : wholeGpu(gpu));
  return card;
}

// -- side panels --------------------------------------------------------------------------

function allDevices(feed) {
  return feed.gpus.flatMap((gpu) => gpu.gpu_instances.flatMap((gi) => gi.mig_devices));
}

function renderLegend(feed) {
  const counts = new Map();
  let idle = 0;
  let busy = 0;
  for (const device of allDevices(feed)) {
    const holder = holderOf(device.lease);
    if (holder) counts.set(holder, (counts.get(holder) || 0) + 1);
    else if (device.pids.length > 0) busy += 1;
    else idle += 1;
  }
  const legend = document.getElementById("legend");
  const items = [];
  for (const holder of [...counts.keys()].sort()) {
    const item = el("li", "tenant");
    item.dataset.holder = holder;
    const swatch = el("span", "swatch");
    swatch.style.backgroundColor = colourOf(holder);
    item.appendChild(swatch);
    const you = holder === feed.you.name ? " (you)" : "";
    item.appendChild(el("span", "", `${holder}${you}: ${counts.get(holder)} device(s)`));
    items.push(item);
  }
  for (const [state, count, label] of [["busy", busy, "busy without a lease"], ["idle", idle, "idle"]]) {
    const item = el("li", "tenant");
    item.appendChild(el("span", `swatch ${state}`));
    item.appendChild(el("span", "", `${label}: ${count} device(s)`));
    items.push(item);
  }
  legend.replaceChildren(...items);
}

function asksFor(request) {
  if (request.uuid) return request.uuid;
  const parts = [];
  if (request.profile) parts.push(request.profile);
  if (request.memory_mib !== null) parts.push(`≥ ${gib(request.memory_mib)} GiB`);
  if (request.sms !== null) parts.push(`≥ ${request.sms} SMs`);
  return parts.join(", ") || "any device";
}

function renderWaiting(feed) {
  const body = document.querySelector("#waiting tbody");
  const rows = feed.waiting.map((request) => {
    const row = el("tr");
    row.dataset.position = String(request.position);
    cell(row, request.position);
    const who = request.redacted ? OTHER_USER : request.user;
    cell(row, request.job ? `${who} (${request.job})` : who, "who");
    const priority = request.priority ? ` (priority ${request.priority})` : "";
    cell(row, asksFor(request) + priority, "what");
    cell(row, ago(request.since, feed.generated_at)).title = clock(request.since);
    cell(row, request.reason ? request.reason.replace("_", " ") : "", "why").title =
      request.detail || "";
    return row;
  });
  body.replaceChildren(...rows);
  document.getElementById("waiting-count").textContent = rows.length ? `(${rows.length})` : "";
  document.getElementById("waiting-empty").hidden = rows.length > 0;
}

function renderJobs(feed) {
  const body = document.querySelector("#jobs tbody");
  const rows = feed.reconfigurations.map((job) => {
    const row = el("tr");
    row.dataset.job = String(job.job_id);
    row.dataset.status = job.status;
    cell(row, `#${job.job_id} ${job.kind}`);
    const when = job.finished_at || job.started_at || job.created_at;
    cell(row, ago(when, feed.generated_at)).title = clock(when);
    cell(row, job.requested_by);
    cell(row, job.gpus.join(", ") || "—", "wrap");
    const result = cell(row, job.status, `status ${job.status}`);
    if (job.message) result.title = job.message;
    return row;
  });
  body.replaceChildren(...rows);
  document.getElementById("jobs-empty").hidden = rows.length > 0;
}

function renderDevices(feed) {
  const body = document.querySelector("#devices tbody");
  const rows = allDevices(feed).map((device) => {
    const row = el("tr");
    row.dataset.uuid = device.uuid;
    cell(row, device.gpu_index);
    cell(row, device.gi_id);
    cell(row, device.ci_id);
    cell(row, device.ci_profile);
    const { start, size } = device.placement;
    cell(row, size > 1 ? `${start}-${start + size - 1}` : String(start));
    cell(row, device.uuid, "uuid");
    cell(row, memoryText(device.memory_used_mib, device.memory_total_mib));
    const holder = holderOf(device.lease);
    const holderCell = cell(row, holder || (device.pids.length ? "busy, no lease" : "—"), "holder");
    if (holder) {
      const swatch = el("span", "swatch");
      swatch.style.backgroundColor = colourOf(holder);
      holderCell.prepend(swatch);
    }
    cell(row, device.lease ? `#${device.lease.lease_id}` : "");
    cell(row, device.pids.length);
    return row;
  });
  body.replaceChildren(...rows);
}

function renderSoft(feed) {
  const devices = feed.soft_devices || [];
  document.getElementById("soft").hidden = devices.length === 0;
  const rows = devices.map((device) => {
    const row = el("tr");
    row.dataset.uuid = device.uuid;
    cell(row, device.gpu_index);
    cell(row, device.uuid, "uuid");
    cell(row, `${device.parent_name} ${device.parent_uuid}`, "uuid");
    cell(row, `${device.share_percent}%`);
    cell(row, `${gib(device.memory_limit_mib)} GiB`);
    cell(row, holderOf(device.lease) || "—", "holder");
    cell(row, device.lease ? `#${device.lease.lease_id}` : "");
    cell(row, device.server);
    cell(row, device.isolation, "warning");
    return row;
  });
  document.querySelector("#soft-devices tbody").replaceChildren(...rows);
}

// -- the loop -----------------------------------------------------------------------------

function render(feed) {
  colours = assignColours(allDevices(feed).map((d) => holderOf(d.lease)).filter(Boolean));
  document.getElementById("machine").textContent = feed.backend;
  const you = feed.you;
  document.getElementById("you").textContent = `${you.name} · ${you.role} · ${you.via}`;
  document.getElementById("gpus").replaceChildren(...feed.gpus.map(gpuCard));
  renderLegend(feed);
  renderWaiting(feed);
  renderJobs(feed);
  renderDevices(feed);
  renderSoft(feed);
  document.body.dataset.generatedAt = String(feed.generated_at);
}

function setLive(state, text) {
  const live = document.getElementById("live");
  live.dataset.state = state;
  live.textContent = text;
}

function showLogin(message) {
  document.getElementById("main").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  setLive("login", "needs a token");
}

async function poll(loop) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let refreshS = DEFAULT_REFRESH_S;
  try {
    const response = await fetch(FEED_URL, { headers, cache: "no-store", credentials: "omit" });
    if (loop !== generation) return; // the token changed meanwhile: a newer loop runs
    if (response.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      showLogin(token ? "the daemon refused this token (unknown, mistyped or revoked)" : "");
      return; // wait for the form
    }
    const feed = await response.json();
    if (!response.ok) throw new Error(feed.message || `HTTP ${response.status}`);
    document.getElementById("login").hidden = true;
    document.getElementById("main").hidden = false;
    document.getElementById("forget").hidden = !token;
    render(feed);
    refreshS = feed.refresh_s || DEFAULT_REFRESH_S;
    setLive("live", `live · updated ${new Date(feed.generated_at * 1000).toLocaleTimeString()}`);
  } catch (error) {
    setLive("offline", `cannot reach the daemon (${error.message}); retrying`);
  }
  if (loop === generation) timer = setTimeout(() => poll(loop), refreshS * 1000);
}

function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
  history.replaceState(null, "", window.location.pathname + window.location.search);
}

function restart() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
  generation += 1;
  poll(generation);
}

function start() {
  takeTokenFromFragment();
  document.getElementById("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    const token = input.value.trim();
    input.value = "";
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    restart();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    restart();
  });
  poll(generation);
}

document.addEventListener("DOMContentLoaded", start);
