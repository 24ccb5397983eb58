// The audit log for admins and supervisors: who changed what and when, old -> new, with
// filters by kind of record, record id, author and dates; newest first, page by page.
import { api } from "./api.js";
import { clear, field, fmtDate, h, select, showError } from "./dom.js";
import { addStrings, t, tOr } from "./i18n.js";
import { ownerName, state } from "./state.js";

addStrings({
  ru: {
    "nav.audit": "Журнал", "audit.title": "Журнал изменений", "audit.entity": "Что",
    "audit.any": "всё", "audit.entityId": "Номер записи", "audit.user": "Кто изменил",
    "audit.anyone": "все", "audit.from": "С даты", "audit.to": "По дату",
    "audit.show": "Показать", "audit.at": "Когда", "audit.action": "Действие",
    "audit.record": "Запись", "audit.changes": "Изменения (было → стало)",
    "audit.more": "Показать ещё", "audit.total": "Записей: {n}",
    "entity.client": "клиент", "entity.lead": "лид", "entity.deal": "сделка",
    "entity.task": "задача", "entity.user": "сотрудник", "entity.sales_plan": "план продаж",
    "entity.contact_person": "контактное лицо", "entity.outbox": "исходящее",
    "action.create": "создание", "action.update": "изменение", "action.stage": "этап",
    "action.done": "выполнение", "action.snooze": "перенос", "action.reject": "отказ",
    "action.delete": "удаление", "action.convert": "конвертация",
  },
  en: {
    "nav.audit": "Audit", "audit.title": "Audit log", "audit.entity": "What",
    "audit.any": "all", "audit.entityId": "Record number", "audit.user": "Changed by",
    "audit.anyone": "anyone", "audit.from": "From date", "audit.to": "To date",
    "audit.show": "Show", "audit.at": "When", "audit.action": "Action",
    "audit.record": "Record", "audit.changes": "Changes (old → new)",
    "audit.more": "Show more", "audit.total": "Entries: {n}",
    "entity.client": "client", "entity.lead": "lead", "entity.deal": "deal",
    "entity.task": "task", "entity.user": "user", "entity.sales_plan": "sales plan",
    "entity.contact_person": "contact person", "entity.outbox": "outbound",
    "action.create": "created", "action.update": "changed", "action.stage": "stage",
    "action.done": "done", "action.snooze": "snoozed", "action.reject": "rejected",
    "action.delete": "deleted", "action.convert": "converted",
  },
});

const ENTITIES = ["client", "lead", "deal", "task", "user", "sales_plan"];
const PAGE = 50;

const shown = (v) => {
  if (v === null || v === undefined || v === "") return t("none");
  return typeof v === "object" ? JSON.stringify(v) : String(v);
};

function changesList(changes) {
  return h("ul", { class: "changes" }, Object.entries(changes || {}).map(([k, [was, now]]) =>
    h("li", {}, h("code", {}, k), `: ${shown(was)} → ${shown(now)}`)));
}

export async function renderAudit(main) {
  const entity = select("entity", [["", t("audit.any")],
    ...ENTITIES.map((e) => [e, t(`entity.${e}`)])], "");
  const entityId = h("input", { name: "entity_id", type: "number", min: "1", inputmode: "numeric" });
  const users = [...state.users.entries()].sort((a, b) => String(a[1]).localeCompare(String(b[1])));
  const user = select("user_id", [["", t("audit.anyone")], ...users.map(([id, n]) => [String(id), n])], "");
  const from = h("input", { name: "created_from", type: "date" });
  const to = h("input", { name: "created_to", type: "date" });
  const body = h("div", { class: "audit" });
  const form = h("form", { class: "filters", novalidate: true },
    field(t("audit.entity"), entity), field(t("audit.entityId"), entityId),
    field(t("audit.user"), user), field(t("audit.from"), from), field(t("audit.to"), to),
    h("button", { type: "submit" }, t("audit.show")));
  const query = () => Object.fromEntries(
    [entity, entityId, user, from, to].map((el) => [el.name, el.value]));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    load(body, form, query(), 0);
  });
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("audit.title")), form), body);
  await load(body, form, query(), 0);
}

async function load(body, form, query, offset) {
  let page;
  try {
    page = await api("GET", "/audit", { query: { ...query, limit: PAGE, offset } });
  } catch (e) {
    showError(form, e);
    return;
  }
  const rows = page.items.map((e) => h("tr", { dataset: { id: String(e.id) } },
    h("td", {}, fmtDate(e.at)),
    h("td", {}, e.user_id === null ? t("none") : ownerName(e.user_id)),
    h("td", {}, tOr(`action.${e.action}`, e.action)),
    h("td", {}, `${tOr(`entity.${e.entity}`, e.entity)} #${e.entity_id ?? ""}`),
    h("td", {}, changesList(e.changes))));
  if (offset > 0) {
    body.querySelector("#audit-table tbody").append(...rows);
  } else {
    clear(body,
      h("p", { class: "muted", id: "audit-total" },
        t("audit.total", { n: page.total_capped ? `${page.total}+` : page.total })),
      h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "audit-table" },
        h("thead", {}, h("tr", {}, ["audit.at", "audit.user", "audit.action", "audit.record",
          "audit.changes"].map((k) => h("th", { scope: "col" }, t(k))))),
        h("tbody", {}, rows))));
  }
  body.querySelector(".more")?.remove();
  if (offset + page.items.length < page.total) {
    body.append(h("button", { type: "button", class: "more",
      onclick: () => load(body, form, query, offset + PAGE) }, t("audit.more")));
  }
}
