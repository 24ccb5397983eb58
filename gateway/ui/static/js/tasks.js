// Tasks due today or overdue: mark done, snooze.
import { api } from "./api.js";
import { callButton } from "./call.js";
import { clear, fmtDate, h, toast } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { state } from "./state.js";

export async function renderTasks(main) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  const end = new Date();
  end.setHours(23, 59, 59, 999);
  let page;
  try {
    page = await api("GET", "/tasks", {
      query: { status: "open", due_before: end.toISOString(), assignee_id: state.me?.role === "manager" ? state.me.id : "", limit: 200 },
    });
  } catch (e) {
    clear(main, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const now = Date.now();
  const overdue = page.items.filter((x) => x.due_at && Date.parse(x.due_at) < now);
  const today = page.items.filter((x) => !overdue.includes(x));
  const reload = () => renderTasks(main);
  const section = (id, title, items) => h("section", { class: `tasks ${id}`, "aria-labelledby": id },
    h("h2", { id }, title, h("span", { class: "count" }, String(items.length))),
    items.length ? h("ul", { class: "plain" }, items.map((x) => taskRow(x, reload)))
      : h("p", { class: "muted" }, t("empty")));
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("tasks.title"))),
    h("div", { class: "task-cols" },
      section("tasks-overdue", t("tasks.overdue"), overdue),
      section("tasks-today", t("tasks.today"), today)));
}

function taskRow(x, reload) {
  const err = h("p", { class: "field-error", role: "alert" });
  const act = async (path, body, msg) => {
    try {
      await api("POST", `/tasks/${x.id}/${path}`, { body });
      toast(msg, "ok");
      await reload();
    } catch (e) {
      err.textContent = e.message;
    }
  };
  const snooze = h("select", { name: "minutes", "aria-label": `${t("tasks.snooze")}: ${x.title}` },
    h("option", { value: "" }, `${t("tasks.snooze")}…`),
    ["15", "60", "1440"].map((m) => h("option", { value: m }, t(`tasks.${m}`))));
  snooze.addEventListener("change", () => {
    if (snooze.value) act("snooze", { minutes: Number(snooze.value) }, t("tasks.snoozed"));
  });
  const target = x.client_id ? { client_id: x.client_id } : x.lead_id ? { lead_id: x.lead_id }
    : x.deal_id ? { deal_id: x.deal_id } : null;
  return h("li", { class: "task", dataset: { taskId: String(x.id) } },
    h("div", { class: "task-main" },
      h("span", { class: "badge" }, tOr(`tkind.${x.kind}`, x.kind)), " ",
      h("strong", {}, x.title),
      h("div", { class: "muted small" }, `${t("tasks.due")}: ${fmtDate(x.due_at)}`,
        x.client_id ? [" · ", h("a", { href: `#/clients/${x.client_id}` }, t("deals.client"))] : null),
      x.note ? h("div", { class: "small" }, x.note) : null),
    h("div", { class: "actions" },
      target && x.kind === "call_back" ? callButton(target) : null,
      h("button", { type: "button", class: "small primary",
        onclick: () => act("done", {}, t("tasks.marked")) }, `✓ ${t("tasks.done")}`),
      snooze),
    err);
}
