// Sales plans in a grid: a row per manager and per team, a column per figure (amount won,
// deals won, calls made, meetings held), for a month or a quarter.  Admins edit every
// row, a supervisor their team's; a manager sees their own row, read-only.
import { api } from "./api.js";
import { clear, field, h, showError, toast } from "./dom.js";
import { addStrings, t } from "./i18n.js";

addStrings({
  ru: {
    "nav.plans": "Планы", "plans.title": "Планы продаж",
    "plans.period": "Месяц или квартал", "plans.hint": "Например 2026-12 или 2026-Q4",
    "plans.who": "Сотрудник / команда", "plans.amount": "Сумма, ₽", "plans.deals": "Сделок",
    "plans.calls": "Звонков", "plans.meetings": "Встреч", "plans.team": "команда",
    "plans.save": "Сохранить планы", "plans.saved": "Планы сохранены",
    "plans.readonly": "Планы задают администратор и руководитель команды",
    "plans.show": "Показать",
  },
  en: {
    "nav.plans": "Plans", "plans.title": "Sales plans",
    "plans.period": "Month or quarter", "plans.hint": "e.g. 2026-12 or 2026-Q4",
    "plans.who": "User / team", "plans.amount": "Amount, RUB", "plans.deals": "Deals",
    "plans.calls": "Calls", "plans.meetings": "Meetings", "plans.team": "team",
    "plans.save": "Save plans", "plans.saved": "Plans saved",
    "plans.readonly": "Plans are set by an admin or the team's supervisor",
    "plans.show": "Show",
  },
});

const FIGURES = ["amount", "deals", "calls", "meetings"];
let current = new Date().toISOString().slice(0, 7);
// Only the answer to the latest request is drawn: a slow first load must not replace the
// grid of the period asked for next while someone is already typing into it.
let loading = 0;

export async function renderPlans(main) {
  const input = h("input", {
    name: "period", value: current, placeholder: t("plans.hint"), autocomplete: "off",
    required: true,
  });
  const body = h("div", { class: "plans" }, h("p", { class: "muted" }, t("loading")));
  const form = h("form", { class: "filters", novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    current = input.value.trim();
    load(body, form);
  } }, field(t("plans.period"), input), h("button", { type: "submit" }, t("plans.show")));
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("plans.title")), form), body);
  await load(body, form);
}

function cell(row, key, i) {
  const money = key === "amount";
  return h("td", { class: "num" }, h("input", {
    name: `${key}-${i}`,
    type: "number", min: "0", step: money ? "0.01" : "1", inputmode: money ? "decimal" : "numeric",
    value: row[key] ?? "", disabled: !row.can_edit,
    "aria-label": `${t(`plans.${key}`)}: ${row.name || row.team}`,
    dataset: { figure: key },
  }));
}

async function load(body, periodForm) {
  const mine = ++loading;
  let data;
  try {
    data = await api("GET", "/plans", { query: { period: current } });
  } catch (e) {
    if (mine !== loading) return;
    showError(periodForm, e);
    clear(body);
    return;
  }
  if (mine !== loading) return;
  const rows = [
    ...data.teams.map((r) => ({ ...r, kind: "team", name: `${r.team} (${t("plans.team")})` })),
    ...data.users.map((r) => ({ ...r, kind: "user" })),
  ];
  const trs = rows.map((r, i) => h("tr", {
    dataset: { kind: r.kind, userId: r.user_id ? String(r.user_id) : "", team: r.team || "" },
  }, h("td", {}, r.name), FIGURES.map((k) => cell(r, k, i))));
  const form = h("form", { class: "plans-form", novalidate: true },
    h("div", { class: "table-wrap" }, h("table", {
      class: "grid", id: "plans-table", dataset: { period: data.period },
    },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("plans.who")),
        FIGURES.map((k) => h("th", { scope: "col", class: "num" }, t(`plans.${k}`))))),
      h("tbody", {}, trs))),
    h("p", { class: "field-error", role: "alert", id: "plans-error" }),
    data.can_edit
      ? h("button", { type: "submit", class: "primary" }, t("plans.save"))
      : h("p", { class: "muted" }, t("plans.readonly")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const items = [];
    rows.forEach((r, i) => {
      if (!r.can_edit) return;
      const item = r.kind === "team" ? { team: r.team } : { user_id: r.user_id };
      for (const k of FIGURES) {
        const raw = form.elements[`${k}-${i}`].value.trim();
        item[k] = raw === "" ? null : k === "amount" ? raw : Number(raw);
      }
      items.push(item);
    });
    const error = form.querySelector("#plans-error");
    error.textContent = "";
    try {
      await api("PUT", "/plans", { body: { period: data.period, items } });
      toast(t("plans.saved"));
      await load(body, periodForm);
    } catch (err) {
      error.textContent = err.message;
    }
  });
  clear(body, h("p", { class: "muted" }, `${data.period}: ${data.from.slice(0, 10)} — ${data.to.slice(0, 10)}`), form);
}
