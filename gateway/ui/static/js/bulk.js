// Mass operations on the clients list: a checkbox per row, "select all matching the
// filter", an action bar (plan tasks, change owner, set status, add/remove a tag, add to /
// remove from a manual segment) and the job's progress bar (POST /bulk/{action}, then
// GET /jobs/{id} until it is done).  clients.js only calls attachBulk() after drawing a page.
import { api } from "./api.js";
import { field, h, select, toast } from "./dom.js";
import { t } from "./i18n.js";
import { openForm } from "./modal.js";
import { state } from "./state.js";
import { TASK_KINDS } from "./taskdialog.js";

const STATUSES = ["cold", "thinking", "ready", "active", "regular", "lost"];
// Query parameters of the list that are not filters (paging, sorting).
const NOT_FILTERS = new Set(["limit", "offset", "after", "sort", "order"]);
const POLL_MS = 500;
let lastStatus = ""; // the last job's outcome, kept across the list's reload

function newKey() {
  return globalThis.crypto?.randomUUID?.() || `bulk-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function actions() {
  const boss = state.me && ["admin", "supervisor"].includes(state.me.role);
  return ["tasks", boss ? "owner" : null, "status", "tag_add", "tag_remove", "segment_add", "segment_remove"]
    .filter(Boolean);
}

function tomorrow() {
  const d = new Date();
  d.setDate(d.getDate() + 1);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

async function segmentControl() {
  try {
    const page = await api("GET", "/segments");
    const manual = (page.items || page).filter((s) => !s.kind || s.kind === "manual");
    if (manual.length) return select("segment_id", manual.map((s) => [String(s.id), s.name]), String(manual[0].id));
  } catch {
    /* no segments list yet: an id will do */
  }
  return h("input", { name: "segment_id", type: "number", min: 1, inputmode: "numeric", required: true });
}

/** The fields of an action's dialog and how its values become the request body. */
async function actionForm(action) {
  const userOptions = [...state.users].map(([id, name]) => [String(id), name]);
  switch (action) {
    case "tasks":
      return [[
        field(t("tasks.kind"), select("kind", TASK_KINDS.map((k) => [k, t(`tkind.${k}`)]), "call_back")),
        field(t("tasks.titleLabel"), h("input", { name: "title", required: true, maxlength: 500, value: t("tkind.call_back") })),
        field(t("bulk.startDate"), h("input", { name: "start_date", type: "date", value: tomorrow(), required: true })),
        field(t("bulk.perDay"), h("input", { name: "per_manager_per_day", type: "number", min: 1, max: 1000, value: 20 })),
        field(t("bulk.assignee"), select("assignee_id", [["", t("bulk.eachOwner")], ...userOptions], "")),
      ], (v) => {
        const body = { kind: v.kind, title: v.title.trim(), start_date: v.start_date,
          per_manager_per_day: Number(v.per_manager_per_day) };
        if (v.assignee_id) body.assignee_id = Number(v.assignee_id);
        return ["tasks", body];
      }];
    case "owner":
      return [[field(t("clients.owner"), select("owner_id", userOptions, String(state.me.id)))],
        (v) => ["owner", { owner_id: Number(v.owner_id) }]];
    case "status":
      return [[field(t("clients.status"), select("status", STATUSES.map((s) => [s, t(`cstatus.${s}`)]), "thinking"))],
        (v) => ["status", { status: v.status }]];
    case "tag_add":
    case "tag_remove":
      return [[field(t("bulk.tag"), h("input", { name: "tag", required: true, maxlength: 100 }))],
        (v) => ["tags", action === "tag_add" ? { add: [v.tag.trim()] } : { remove: [v.tag.trim()] }]];
    default: {
      const seg = await segmentControl();
      return [[field(t("clients.segment"), seg)], (v) => ["segment",
        { segment_id: Number(v.segment_id), mode: action === "segment_add" ? "add" : "remove" }]];
    }
  }
}

/** Poll the job until it ends; `show(job)` draws each step. */
async function follow(jobId, show) {
  for (;;) {
    const job = await api("GET", `/jobs/${jobId}`);
    show(job);
    if (job.status === "done" || job.status === "failed") return job;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * Add selection and the action bar to the clients table in `container`.  `query`: the
 * list's current query parameters (its filters), `total`: how many clients match them,
 * `reload()`: redraw the list after a job.
 */
export function attachBulk(container, { query = {}, total = 0, reload = () => {} } = {}) {
  const table = container.querySelector("table");
  if (!table) return;
  const selected = new Set();
  let all = false;
  const rows = [...table.querySelectorAll("tbody tr[data-client-id]")];
  const count = h("span", { class: "bulk-count", id: "bulk-count", "aria-live": "polite" });
  const allBox = h("input", { type: "checkbox", id: "bulk-all" });
  const action = select("action", actions().map((a) => [a, t(`bulk.action.${a}`)]), "tasks");
  action.id = "bulk-action";
  action.setAttribute("aria-label", t("bulk.action"));
  const apply = h("button", { type: "button", class: "primary small", id: "bulk-apply" }, t("bulk.apply"));
  const progress = h("progress", { id: "bulk-progress", max: 1, value: 0, hidden: true, "aria-label": t("bulk.progress") });
  const status = h("p", { class: "bulk-status muted small", id: "bulk-status", role: "status" });
  const headBox = h("input", { type: "checkbox", "aria-label": t("bulk.page") });

  const refresh = () => {
    const n = all ? total : selected.size;
    count.textContent = t("bulk.selected", { n });
    apply.disabled = n === 0;
    headBox.checked = rows.length > 0 && rows.every((r) => selected.has(Number(r.dataset.clientId)));
    for (const box of table.querySelectorAll("tbody input.bulk-pick")) box.disabled = all;
  };
  for (const row of rows) {
    const id = Number(row.dataset.clientId);
    const name = row.querySelector("a")?.textContent || `#${id}`;
    const box = h("input", { type: "checkbox", class: "bulk-pick", "aria-label": t("bulk.pick", { name }),
      onchange: () => { if (box.checked) selected.add(id); else selected.delete(id); refresh(); } });
    row.prepend(h("td", { class: "pick" }, box));
  }
  table.querySelector("thead tr")?.prepend(h("th", { scope: "col", class: "pick" }, headBox));
  headBox.addEventListener("change", () => {
    for (const box of table.querySelectorAll("tbody input.bulk-pick")) {
      box.checked = headBox.checked;
      box.dispatchEvent(new Event("change"));
    }
  });
  allBox.addEventListener("change", () => { all = allBox.checked; refresh(); });

  apply.addEventListener("click", async () => {
    const [fields, toBody] = await actionForm(action.value);
    const key = newKey(); // one key per dialog: a double submit queues one job
    const n = all ? total : selected.size;
    openForm(`${t(`bulk.action.${action.value}`)} — ${t("bulk.selected", { n })}`, fields, async (v) => {
      const [path, params] = toBody(v);
      const filters = Object.fromEntries(Object.entries(query)
        .filter(([k, x]) => !NOT_FILTERS.has(k) && x !== "" && x !== null && x !== undefined));
      const selection = all ? { filters } : { client_ids: [...selected] };
      const body = path === "segment" ? { ...params, selection } : { ...params, ...selection };
      const out = await api("POST", `/bulk/${path}`, { body, headers: { "Idempotency-Key": key } });
      progress.hidden = false;
      apply.disabled = true;
      follow(out.job_id, (job) => {
        progress.max = Math.max(job.total || 1, 1);
        progress.value = job.processed || 0;
        status.textContent = t(`bulk.status.${job.status}`, { processed: job.processed, total: job.total ?? "…",
          skipped: job.skipped });
      }).then((job) => {
        lastStatus = t(`bulk.status.${job.status}`, { processed: job.processed, total: job.total,
          skipped: job.skipped });
        toast(lastStatus, job.status === "done" ? "ok" : "error");
        reload();
      }).catch((e) => { status.textContent = e.message; apply.disabled = false; });
    }, t("bulk.run"));
  });

  const bar = h("div", { class: "bulk-bar", id: "bulk-bar", role: "region", "aria-label": t("bulk.title") },
    count,
    total > 0 ? h("label", { class: "bulk-allbox" }, allBox, " ", t("bulk.all", { n: total })) : null,
    action, apply, progress, status);
  table.parentElement.insertBefore(bar, table);
  status.textContent = lastStatus;
  refresh();
  return bar;
}
