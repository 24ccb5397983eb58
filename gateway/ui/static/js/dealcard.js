// A deal's card: stage, amount and line items, won/lost/reopen, its client's contacts with
// click-to-call, its tasks, and its conversation (an email from the deal carries the deal's
// [#D-id] token, so the client's answer comes back to this timeline).
import { api } from "./api.js";
import { callButton } from "./call.js";
import {
  loadPipelines, nameOf, openDealForm, openLoseDialog, reopenDeal, stageName, winDeal,
} from "./dealform.js";
import { clear, field, fmtDate, fmtMoney, h, select, showError, clearErrors, toast } from "./dom.js";
import { addStrings, t, tOr } from "./i18n.js";
import { ownerName } from "./state.js";
import { conversationCard } from "./timeline.js";

addStrings({
  ru: {
    "dc.back": "← Воронка", "dc.pipeline": "Воронка", "dc.stage": "Этап",
    "dc.probability": "Вероятность", "dc.amount": "Сумма", "dc.client": "Клиент",
    "dc.owner": "Ответственный", "dc.created": "Создана", "dc.closed": "Закрыта",
    "dc.reason": "Причина проигрыша", "dc.comment": "Комментарий", "dc.items": "Позиции",
    "dc.contacts": "Контакты", "dc.history": "Движение по этапам", "dc.tasks": "Задачи",
    "dc.taskTitle": "Задача", "dc.taskKind": "Тип", "dc.taskDue": "Срок",
    "dc.taskAdd": "Добавить задачу", "dc.taskAdded": "Задача добавлена",
    "dc.taskDone": "Готово", "dc.moveTo": "Перевести на этап",
  },
  en: {
    "dc.back": "← Pipeline", "dc.pipeline": "Pipeline", "dc.stage": "Stage",
    "dc.probability": "Probability", "dc.amount": "Amount", "dc.client": "Client",
    "dc.owner": "Owner", "dc.created": "Created", "dc.closed": "Closed",
    "dc.reason": "Loss reason", "dc.comment": "Comment", "dc.items": "Line items",
    "dc.contacts": "Contacts", "dc.history": "Stage history", "dc.tasks": "Tasks",
    "dc.taskTitle": "Task", "dc.taskKind": "Kind", "dc.taskDue": "Due",
    "dc.taskAdd": "Add the task", "dc.taskAdded": "Task added",
    "dc.taskDone": "Done", "dc.moveTo": "Move to the stage",
  },
});

const TASK_KINDS = ["call_back", "send_offer", "offer_discount", "check_payment", "send_documents", "other"];

export async function renderDealCard(main, id) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  let deal, timeline, tasks, pipelines, client, contacts;
  try {
    [deal, timeline, tasks, pipelines] = await Promise.all([
      api("GET", `/deals/${id}`),
      api("GET", `/deals/${id}/timeline`, { query: { limit: 100 } }),
      api("GET", "/tasks", { query: { deal_id: id, status: "open", limit: 50 } }),
      loadPipelines(true),
    ]);
    [client, contacts] = await Promise.all([
      api("GET", `/clients/${deal.client_id}`),
      api("GET", `/clients/${deal.client_id}/contacts`).catch(() => ({ items: [] })),
    ]);
  } catch (e) {
    clear(main, h("a", { href: "#/deals" }, t("dc.back")),
      h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const reload = () => {
    if (location.hash === `#/deals/${id}`) renderDealCard(main, id);
  };
  const act = (fn) => async () => {
    try {
      await fn();
      reload();
    } catch (e) {
      toast(`${t("error")}: ${e.message}`, "error");
    }
  };
  const pipeline = pipelines.find((p) => p.id === deal.pipeline_id) || pipelines[0];
  const closed = deal.stage_kind !== "open";
  const label = (code) => {
    const st = pipeline.stages.find((s) => s.code === code);
    return st ? nameOf(st) : code || "—";
  };
  const phones = [...client.phones.map((p) => [p, client.name]),
    ...contacts.items.flatMap((c) => c.phones.map((p) => [p, c.name]))];
  const emails = [...client.emails, ...contacts.items.flatMap((c) => c.emails)];

  const stageSel = closed ? null : h("select", { name: "stage", id: "deal-stage",
    "aria-label": t("dc.moveTo") },
  pipeline.stages.filter((s) => !s.closed).map((s) => h("option", { value: s.code, selected: s.code === deal.stage }, nameOf(s))));
  const stageErr = h("p", { class: "field-error", role: "alert", id: "deal-stage-error" });
  stageSel?.addEventListener("change", async () => {
    stageErr.textContent = "";
    try {
      await api("POST", `/deals/${deal.id}/stage`, { body: { stage: stageSel.value } });
      toast(t("deals.moved", { stage: label(stageSel.value) }), "ok");
      reload();
    } catch (e) {
      stageErr.textContent = e.message;
      stageSel.value = deal.stage;
    }
  });

  const info = h("section", { class: "card", "aria-labelledby": "deal-title" },
    h("h1", { id: "deal-title" }, deal.title),
    h("div", { class: "row" },
      h("span", { class: `badge stage-${deal.stage_kind}`, id: "deal-stage-badge" }, stageName(deal)),
      h("span", { class: "muted small" }, nameOf(pipeline))),
    h("dl", { class: "props" },
      h("dt", {}, t("dc.client")), h("dd", {}, h("a", { href: `#/clients/${deal.client_id}` }, client.name)),
      h("dt", {}, t("dc.amount")), h("dd", { id: "deal-amount" }, fmtMoney(deal.amount, deal.currency)),
      h("dt", {}, t("dc.probability")), h("dd", {}, deal.probability === null ? t("none") : `${deal.probability}%`),
      h("dt", {}, t("dc.owner")), h("dd", {}, ownerName(deal.owner_id)),
      h("dt", {}, t("dc.created")), h("dd", {}, fmtDate(deal.created_at)),
      deal.closed_at ? [h("dt", {}, t("dc.closed")), h("dd", {}, fmtDate(deal.closed_at))] : null,
      deal.loss_reason ? [h("dt", {}, t("dc.reason")), h("dd", { id: "deal-loss-reason" }, deal.loss_reason)] : null,
      deal.loss_comment ? [h("dt", {}, t("dc.comment")), h("dd", {}, deal.loss_comment)] : null),
    stageSel ? field(t("dc.moveTo"), stageSel) : null, stageErr,
    h("div", { class: "row" },
      closed ? h("button", { type: "button", class: "small primary", onclick: act(() => reopenDeal(deal)) }, t("deal.reopen"))
        : [h("button", { type: "button", class: "small primary", onclick: act(() => winDeal(deal)) }, t("deal.win")),
          h("button", { type: "button", class: "small danger", onclick: () => openLoseDialog(deal, reload) }, t("deal.lose"))],
      h("button", { type: "button", class: "small", id: "deal-edit", onclick: () => openDealForm(deal, null, reload) }, t("deal.edit"))),
    deal.items.length ? [h("h2", {}, t("dc.items")), h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "deal-items" },
      h("thead", {}, h("tr", {}, ["deal.item", "deal.qty", "deal.price", "deal.discount", "deal.total"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, deal.items.map((i) => h("tr", {},
        h("td", {}, i.name), h("td", { class: "nowrap" }, `${i.quantity} ${i.unit}`),
        h("td", { class: "nowrap" }, fmtMoney(i.price, deal.currency)),
        h("td", {}, Number(i.discount) ? `${Number(i.discount)}%` : t("none")),
        h("td", { class: "nowrap" }, fmtMoney(i.total, deal.currency)))))))] : null,
    h("h2", {}, t("dc.contacts")),
    phones.length || emails.length ? h("ul", { class: "plain", id: "deal-contacts" },
      phones.map(([p, who]) => h("li", { class: "phone" }, `${who}: ${p}`, " ",
        callButton({ deal_id: deal.id, number: p }, t("call.button")))),
      emails.map((e) => h("li", {}, h("a", { href: `mailto:${e}` }, e))))
      : h("p", { class: "muted" }, t("empty")),
    h("h2", {}, t("dc.history")),
    h("ol", { class: "plain small", id: "deal-history" }, deal.history.map((x) => h("li", {},
      `${fmtDate(x.at)}: ${x.from ? `${label(x.from)} → ` : ""}${label(x.to)}`))));

  const taskList = h("section", { class: "card", "aria-labelledby": "deal-tasks-title" },
    h("h2", { id: "deal-tasks-title" }, t("dc.tasks")),
    tasks.items.length ? h("ul", { class: "plain", id: "deal-tasks" }, tasks.items.map((x) => h("li", { class: "task" },
      h("div", {}, h("span", { class: "badge" }, tOr(`tkind.${x.kind}`, x.kind)), " ", h("strong", {}, x.title),
        h("div", { class: "muted small" }, `${t("dc.taskDue")}: ${fmtDate(x.due_at)}`)),
      h("button", { type: "button", class: "small", onclick: act(() => api("POST", `/tasks/${x.id}/done`, { body: {} })) },
        `✓ ${t("dc.taskDone")}`))))
      : h("p", { class: "muted" }, t("empty")),
    taskForm(deal, reload));

  clear(main,
    h("a", { href: "#/deals", class: "back" }, t("dc.back")),
    h("div", { class: "client-card deal-card" },
      h("div", { class: "stack" }, info, taskList),
      conversationCard({ deal_id: deal.id }, emails, timeline.items, reload)));
}

function taskForm(deal, reload) {
  const title = h("input", { name: "title", required: true, maxlength: 500 });
  const kind = select("kind", TASK_KINDS.map((k) => [k, tOr(`tkind.${k}`, k)]), "call_back");
  const due = h("input", { name: "due_local", type: "datetime-local" });
  const form = h("form", { class: "task-add", novalidate: true },
    field(t("dc.taskTitle"), title), field(t("dc.taskKind"), kind), field(t("dc.taskDue"), due),
    h("p", { class: "form-error field-error", role: "alert" }),
    h("button", { type: "submit", class: "small primary" }, t("dc.taskAdd")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const body = { deal_id: deal.id, client_id: deal.client_id, kind: kind.value, title: title.value.trim() };
    if (due.value) body.due_local = due.value.length === 16 ? `${due.value}:00` : due.value;
    try {
      await api("POST", "/tasks", { body });
      toast(t("dc.taskAdded"), "ok");
      reload();
    } catch (e) {
      showError(form, e);
    }
  });
  return form;
}
