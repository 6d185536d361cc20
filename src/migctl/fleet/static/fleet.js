// migctl fleet page: polls fleet.json (the fleet view the controller publishes after each
// cycle, served by the Dask scheduler's own web server) and redraws the page.
//
// Every string from the fleet goes into the page through textContent, never as HTML.
// rowsOf / summaryOf are pure (no DOM): tests run them under node on a real fleet view.
"use strict";

const FEED_URL = "fleet.json";
const REFRESH_MS = 2000;
const SHOWN_TASKS = 3;
const SHOWN_DECISIONS = 20;

function sliceState(gpu, slice) {
  if (gpu.reshaping) return "reshaping";
  return slice.busy ? "busy" : "idle";
}

function tasksText(worker) {
  return worker ? worker.tasks.slice(0, SHOWN_TASKS).map((t) => t.key).join(", ") : "";
}

// One row per MIG slice and per soft device: [host, gpu, slice, device, state, worker, tasks]
// (what `migctl fleet status` prints).
function rowsOf(view) {
  const rows = [];
  for (const host of view.hosts || []) {
    if (host.error || !(host.gpus.length || host.soft.length)) {
      rows.push([host.name, "", "", "", host.error || "no GPUs", "", ""]);
    }
    for (const gpu of host.gpus) {
      for (const slice of gpu.slices) {
        const place = `${slice.profile}@${slice.placement.start}:${slice.placement.size}`;
        const worker = slice.worker;
        rows.push([host.name, String(gpu.index), place, slice.uuid || "",
          sliceState(gpu, slice), worker ? worker.status : "", tasksText(worker)]);
      }
    }
    for (const soft of host.soft) {
      const worker = soft.worker_view;
      rows.push([host.name, String(soft.gpu), `soft ${soft.percent}% ${soft.memory_limit_mib} MiB`,
        soft.uuid, `isolation ${soft.isolation}`, worker ? worker.status : "", tasksText(worker)]);
    }
  }
  return rows;
}

function summaryOf(view) {
  const c = view.controller;
  if (!c) return "waiting for the fleet controller's first cycle";
  return `scheduler ${view.scheduler}; controller: ${c.mode} (${c.holder}), ${c.cycles} cycles, ` +
    `last ${c.last_cycle_s.toFixed(3)} s; reshapes done ${c.reshapes_done}; ` +
    `tasks waiting ${view.waiting.length}; re-run ${c.tasks_rerun}`;
}

// -- drawing ----------------------------------------------------------------------------------

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.textContent = text;
  return node;
}

function fill(list, lines) {
  list.replaceChildren(...lines.map((line) => el("li", line)));
}

function draw(view) {
  document.getElementById("summary").textContent = summaryOf(view);
  const body = document.querySelector("#slices tbody");
  body.replaceChildren(...rowsOf(view).map((cells) => {
    const tr = document.createElement("tr");
    const state = cells[4].startsWith("isolation") ? "soft" : cells[4];
    cells.forEach((text, i) => tr.appendChild(el("td", text, i === 4 ? state : "")));
    return tr;
  }));
  const soft = (view.hosts || []).some((h) => h.soft.length);
  const note = document.getElementById("soft-note");
  note.hidden = !soft;
  note.textContent = soft ? "isolation soft: soft devices share their GPU through CUDA MPS, " +
    "with no fault or memory-bandwidth isolation (a fatal fault in one client ends every client " +
    "of that GPU's MPS server); the fleet never reshapes them." : "";
  fill(document.getElementById("reshapes"), (view.reshapes || []).map((r) =>
    `reshape ${r.id}: ${r.host} GPU ${r.gpu}, ${r.phase}, ${Math.round(r.age_s)} s`));
  fill(document.getElementById("decisions"), (view.decisions || []).slice(-SHOWN_DECISIONS)
    .reverse().map((d) => JSON.stringify(d)));
}

async function poll() {
  const error = document.getElementById("error");
  try {
    const response = await fetch(FEED_URL, { cache: "no-store" });
    if (!response.ok) throw new Error(`${FEED_URL}: HTTP ${response.status}`);
    draw(await response.json());
    error.hidden = true;
  } catch (failure) {
    error.hidden = false;
    error.textContent = `cannot read the fleet view: ${failure.message}`;
  }
  setTimeout(poll, REFRESH_MS);
}

if (typeof document !== "undefined") poll();
if (typeof module !== "undefined") module.exports = { rowsOf, summaryOf };
