// Tasks: my day (overdue + today), my week (Monday-Sunday by day), all open tasks.
// From a task: call, email, complete (result + next task), snooze, edit / reassign.
import { api } from "./api.js";
import { callButton } from "./call.js";
import { clear, fmtDate, h, toast } from "./dom.js";
import { getLang, t, tOr } from "./i18n.js";
import { replyComposer } from "./reply.js";
import { ownerName, state } from "./state.js";
import { openCompleteForm, openSnoozeForm, openTaskForm, snoozePreset } from "./taskdialog.js";

const VIEWS = ["day", "week", "open"];
const PRESETS = ["15m", "1h", "3h", "tomorrow", "next_week"];
let view = "day";
let who = null; // assignee filter: a user id, or "" for everyone visible

const canPick = () => state.me && ["admin", "supervisor"].includes(state.me.role);

export async function renderTasks(main) {
  if (who === null) who = state.me ? String(state.me.id) : "";
  const reload = () => renderTasks(main);
  const tabs = h("div", { class: "seg", role: "group", "aria-label": t("tasks.view") },
    VIEWS.map((v) => h("button", { type: "button", class: "small", "aria-pressed": String(v === view),
      dataset: { view: v }, onclick: () => { view = v; reload(); } }, t(`tasks.view.${v}`))));
  const picker = canPick()
    ? h("select", { name: "assignee", "aria-label": t("tasks.assignee"),
      onchange: (ev) => { who = ev.target.value; reload(); } },
    h("option", { value: "", selected: who === "" }, t("tasks.everyone")),
    [...state.users].map(([id, name]) => h("option", { value: String(id), selected: String(id) === who }, name)))
    : null;
  const add = h("button", { type: "button", class: "primary", id: "task-new",
    onclick: () => openTaskForm(null, {}, reload) }, t("tasks.new"));
  const body = h("div", { class: "tasks-body" }, h("p", { class: "muted" }, t("loading")));
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("tasks.title")), tabs, picker, add), body);
  const base = { status: "open", limit: 200, assignee_id: canPick() ? who : "" };
  try {
    if (view === "day") {
      const [overdue, today] = await Promise.all([
        api("GET", "/tasks", { query: { ...base, due: "overdue" } }),
        api("GET", "/tasks", { query: { ...base, due: "today" } }),
      ]);
      const late = new Set(overdue.items.map((x) => x.id));
      clear(body, h("div", { class: "task-cols" },
        section("tasks-overdue", t("tasks.overdue"), overdue.items, reload),
        section("tasks-today", t("tasks.today"), today.items.filter((x) => !late.has(x.id)), reload)));
    } else if (view === "week") {
      const [overdue, week] = await Promise.all([
        api("GET", "/tasks", { query: { ...base, due: "overdue" } }),
        api("GET", "/tasks", { query: { ...base, due: "week" } }),
      ]);
      clear(body, overdue.items.length ? section("tasks-overdue", t("tasks.overdue"), overdue.items, reload) : null,
        weekGrid(week.items, reload));
    } else {
      const page = await api("GET", "/tasks", { query: base });
      clear(body, section("tasks-open", t("tasks.view.open"), page.items, reload, page.total));
    }
  } catch (e) {
    clear(body, h("p", { class: "field-error", role: "alert" }, e.message));
  }
}

function section(id, title, items, reload, total) {
  return h("section", { class: `tasks ${id}`, "aria-labelledby": id },
    h("h2", { id }, title, h("span", { class: "count" }, String(total ?? items.length))),
    items.length ? h("ul", { class: "plain" }, items.map((x) => taskRow(x, reload)))
      : h("p", { class: "muted" }, t("empty")));
}

function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function weekGrid(items, reload) {
  const monday = new Date();
  monday.setHours(0, 0, 0, 0);
  monday.setDate(monday.getDate() - ((monday.getDay() + 6) % 7));
  const locale = getLang() === "ru" ? "ru-RU" : "en-GB";
  const todayKey = dayKey(new Date().toISOString());
  const days = [...Array(7).keys()].map((i) => {
    const d = new Date(monday);
    d.setDate(d.getDate() + i);
    return d;
  });
  return h("div", { class: "week", id: "tasks-week" }, days.map((d) => {
    const key = dayKey(d.toISOString());
    const mine = items.filter((x) => x.due_at && dayKey(x.due_at) === key);
    const label = d.toLocaleDateString(locale, { weekday: "short", day: "numeric", month: "short" });
    return h("section", { class: `tasks day${key === todayKey ? " today" : ""}`, dataset: { day: d.toISOString().slice(0, 10) },
      "aria-label": label },
    h("h2", {}, label, h("span", { class: "count" }, String(mine.length))),
    mine.length ? h("ul", { class: "plain" }, mine.map((x) => taskRow(x, reload))) : h("p", { class: "muted" }, t("empty")));
  }));
}

function linkOf(x) {
  if (x.client_id) return [{ client_id: x.client_id }, `#/clients/${x.client_id}`, t("deals.client")];
  if (x.lead_id) return [{ lead_id: x.lead_id }, `#/leads/${x.lead_id}`, t("tasks.linkLead")];
  if (x.deal_id) return [{ deal_id: x.deal_id }, "#/deals", t("tasks.linkDeal")];
  return [null, null, null];
}

/** The reply composer of the task's client or lead, in the modal dialog. */
async function emailFrom(x, target) {
  const dlg = document.getElementById("modal");
  const path = target.client_id ? `/clients/${target.client_id}` : `/leads/${target.lead_id}`;
  try {
    const [who, tl] = await Promise.all([api("GET", path), api("GET", `${path}/timeline`, { query: { limit: 50 } })]);
    const composer = replyComposer(target, who.emails || [], tl.items, () => dlg.close());
    if (!composer.element) {
      toast(t("tasks.noEmail"), "error");
      return;
    }
    dlg.setAttribute("aria-labelledby", "task-email-title");
    clear(dlg, h("div", { class: "modal-form" },
      h("h2", { id: "task-email-title" }, `${t("tasks.email")}: ${x.title}`), composer.element,
      h("div", { class: "row end" }, h("button", { type: "button", onclick: () => dlg.close() }, t("close")))));
    dlg.showModal();
    composer.element.querySelector("textarea")?.focus();
  } catch (e) {
    toast(`${t("error")}: ${e.message}`, "error");
  }
}

function taskRow(x, reload) {
  const err = h("p", { class: "field-error", role: "alert" });
  const snooze = h("select", { name: "snooze", "aria-label": `${t("tasks.snooze")}: ${x.title}` },
    h("option", { value: "" }, `${t("tasks.snooze")}…`),
    PRESETS.map((p) => h("option", { value: p }, t(`tasks.preset.${p}`))),
    h("option", { value: "pick" }, t("tasks.preset.pick")));
  snooze.addEventListener("change", async () => {
    const p = snooze.value;
    snooze.value = "";
    if (!p) return;
    if (p === "pick") {
      openSnoozeForm(x, reload);
      return;
    }
    try {
      await snoozePreset(x, p);
      await reload();
    } catch (e) {
      err.textContent = e.message;
    }
  });
  const [target, href, label] = linkOf(x);
  const overdue = x.status === "open" && x.due_at && Date.parse(x.due_at) < Date.now();
  const kindName = getLang() === "ru" ? x.kind_title_ru : x.kind_title_en;
  return h("li", { class: `task${overdue ? " overdue" : ""}`, dataset: { taskId: String(x.id) } },
    h("div", { class: "task-main" },
      h("span", { class: "badge" }, tOr(`tkind.${x.kind}`, kindName)), " ",
      h("strong", {}, x.title),
      h("div", { class: "muted small" }, `${t("tasks.due")}: ${fmtDate(x.due_at)}`,
        x.remind_at && x.remind_at !== x.due_at ? ` · ${t("tasks.remindAt")}: ${fmtDate(x.remind_at)}` : null,
        href ? [" · ", h("a", { href }, label)] : null,
        canPick() ? ` · ${ownerName(x.assignee_id)}` : null),
      x.note ? h("div", { class: "small" }, x.note) : null),
    h("div", { class: "actions" },
      target ? callButton(target) : null,
      target && !target.deal_id ? h("button", { type: "button", class: "small",
        onclick: () => emailFrom(x, target) }, `✉ ${t("tasks.email")}`) : null,
      h("button", { type: "button", class: "small primary",
        onclick: () => openCompleteForm(x, reload) }, `✓ ${t("tasks.done")}`),
      snooze,
      h("button", { type: "button", class: "small", "aria-label": `${t("tasks.edit")}: ${x.title}`,
        onclick: () => openTaskForm(x, {}, reload) }, t("tasks.edit"))),
    err);
}
