// Task dialogs: create / edit (with reassign), complete (result + the next task), snooze to
// a chosen time.  Usable from any card: openTaskForm(null, {client_id}, reload).
import { api } from "./api.js";
import { field, h, select, toast } from "./dom.js";
import { t } from "./i18n.js";
import { openForm } from "./modal.js";
import { state } from "./state.js";

export const TASK_KINDS = ["call_back", "send_offer", "offer_discount", "check_payment",
  "send_documents", "meeting", "other"];
const REMIND = ["0", "15", "60", "1440"];
const LINKS = ["client_id", "lead_id", "deal_id"];

const pad = (n) => String(n).padStart(2, "0");

/** An ISO time -> the value of a datetime-local input (the browser's time zone). */
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A datetime-local value -> an ISO time with its offset (null when empty). */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** Tomorrow at 10:00 (a sensible default for a new task). */
function tomorrowAt10() {
  const d = new Date();
  d.setDate(d.getDate() + 1);
  d.setHours(10, 0, 0, 0);
  return d.toISOString();
}

const kindSelect = (name, value) => select(name, TASK_KINDS.map((k) => [k, t(`tkind.${k}`)]), value);

function assigneeControl(current) {
  if (!state.me || !["admin", "supervisor"].includes(state.me.role) || state.users.size < 2) return null;
  const options = [...state.users].map(([id, name]) => [String(id), name]);
  if (current && !state.users.has(current)) options.push([String(current), `#${current}`]);
  return select("assignee_id", options, String(current ?? state.me.id));
}

function remindLead(task) {
  if (!task || !task.due_at || !task.remind_at) return "0";
  const minutes = Math.round((Date.parse(task.due_at) - Date.parse(task.remind_at)) / 60000);
  return REMIND.includes(String(minutes)) ? String(minutes) : "0";
}

/**
 * openTaskForm(null, links, done) creates a task linked to `links` ({client_id} / {lead_id}
 * / {deal_id}); openTaskForm(task, {}, done) changes it (a new assignee goes through
 * /reassign, so the roles' rules apply).  `done(task)` gets the API's answer.
 */
export function openTaskForm(task, links = {}, done = () => {}) {
  const x = task || { kind: "call_back", title: "", due_at: tomorrowAt10(), note: "", ...links };
  const linkType = LINKS.find((k) => x[k]) || "";
  const title = h("input", { name: "title", value: x.title || "", required: true, maxlength: 500 });
  const kind = kindSelect("kind", x.kind);
  kind.addEventListener("change", () => {
    if (!title.value.trim() || TASK_KINDS.some((k) => t(`tkind.${k}`) === title.value)) {
      title.value = t(`tkind.${kind.value}`);
    }
  });
  if (!task && !title.value) title.value = t(`tkind.${x.kind}`);
  const assignee = assigneeControl(x.assignee_id);
  const fields = [
    field(t("tasks.kind"), kind),
    field(t("tasks.titleLabel"), title),
    field(t("tasks.due"), h("input", { name: "due", type: "datetime-local", value: toLocalInput(x.due_at) })),
    field(t("tasks.remind"), select("remind", REMIND.map((m) => [m, t(`tasks.remind${m}`)]), remindLead(task))),
    assignee ? field(t("tasks.assignee"), assignee) : null,
    field(t("tasks.link"), select("link", [["", t("none")], ["client_id", t("tasks.linkClient")],
      ["lead_id", t("tasks.linkLead")], ["deal_id", t("tasks.linkDeal")]], linkType)),
    field(t("tasks.linkId"), h("input", { name: "link_id", type: "number", min: 1, inputmode: "numeric",
      value: linkType ? String(x[linkType]) : "" })),
    field(t("tasks.note"), h("textarea", { name: "note", rows: 3, maxlength: 10000 }, x.note || "")),
  ];
  const form = openForm(t(task ? "tasks.editTitle" : "tasks.newTitle"), fields, async (v) => {
    const body = {
      kind: v.kind,
      title: v.title.trim(),
      due_at: fromLocalInput(v.due),
      note: v.note,
    };
    if (body.due_at) body.remind_before = Number(v.remind || 0);
    const linkId = v.link && v.link_id ? Number(v.link_id) : null;
    let out;
    if (task) {
      for (const k of LINKS) body[k] = k === v.link ? linkId : null;
      if (!body.due_at) delete body.due_at;
      out = await api("PATCH", `/tasks/${task.id}`, { body });
      if (v.assignee_id && Number(v.assignee_id) !== task.assignee_id) {
        out = await api("POST", `/tasks/${task.id}/reassign`, { body: { assignee_id: Number(v.assignee_id) } });
      }
      toast(t("tasks.saved"), "ok");
    } else {
      if (v.link && linkId) body[v.link] = linkId;
      if (v.assignee_id) body.assignee_id = Number(v.assignee_id);
      if (!body.due_at) delete body.due_at;
      out = await api("POST", "/tasks", { body });
      toast(t("tasks.created"), "ok");
    }
    await done(out);
  }, task ? t("save") : t("tasks.create"));
  form.id = task ? "task-edit-form" : "task-new-form";
  return form;
}

/** Complete a task: its result, and (optionally) the next task in the same dialog. */
export function openCompleteForm(task, done = () => {}) {
  const plan = h("input", { type: "checkbox", name: "plan_next", id: "task-plan-next" });
  const nextKind = kindSelect("next_kind", task.kind);
  const nextTitle = h("input", { name: "next_title", maxlength: 500, value: task.title });
  const nextDue = h("input", { name: "next_due", type: "datetime-local", value: toLocalInput(tomorrowAt10()) });
  const nextBox = h("div", { class: "next-task", hidden: true },
    field(t("tasks.kind"), nextKind), field(t("tasks.titleLabel"), nextTitle), field(t("tasks.due"), nextDue));
  plan.addEventListener("change", () => { nextBox.hidden = !plan.checked; });
  const fields = [
    h("p", { class: "muted" }, task.title),
    field(t("tasks.result"), h("textarea", { name: "result", rows: 3, maxlength: 10000 })),
    h("div", { class: "field check" }, plan, h("label", { for: plan.id }, t("tasks.planNext"))),
    nextBox,
  ];
  const form = openForm(t("tasks.completeTitle"), fields, async (v) => {
    const body = {};
    if (v.result && v.result.trim()) body.result = v.result.trim();
    if (v.plan_next) {
      body.next = { kind: v.next_kind, title: (v.next_title || "").trim() || t(`tkind.${v.next_kind}`) };
      const due = fromLocalInput(v.next_due);
      if (due) body.next.due_at = due;
    }
    const out = await api("POST", `/tasks/${task.id}/done`, { body });
    toast(out.next_task ? t("tasks.markedNext") : t("tasks.marked"), "ok");
    await done(out);
  }, t("tasks.complete"));
  form.id = "task-done-form";
  return form;
}

/** Snooze to a time picked in the dialog. */
export function openSnoozeForm(task, done = () => {}) {
  const when = h("input", { name: "until", type: "datetime-local", value: toLocalInput(tomorrowAt10()), required: true });
  const form = openForm(t("tasks.snoozeTitle"), [h("p", { class: "muted" }, task.title),
    field(t("tasks.snoozeUntil"), when)], async (v) => {
    const out = await api("POST", `/tasks/${task.id}/snooze`, { body: { until: fromLocalInput(v.until) } });
    toast(t("tasks.snoozed"), "ok");
    await done(out);
  }, t("tasks.snooze"));
  form.id = "task-snooze-form";
  return form;
}

/** Snooze by a preset (15m, 1h, 3h, tomorrow, next_week). */
export async function snoozePreset(task, preset) {
  const out = await api("POST", `/tasks/${task.id}/snooze`, { body: { preset } });
  toast(t("tasks.snoozed"), "ok");
  return out;
}
