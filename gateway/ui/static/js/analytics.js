// Analytics for heads of sales: the funnel (how far deals got, losses by stage and why),
// requests and refusals per period, and what each manager did.  What a user sees is
// scoped by their role on the server (a manager: their own work).
import { api } from "./api.js";
import { clear, field, fmtMoney, h, select } from "./dom.js";
import { getLang, t, tOr } from "./i18n.js";

const period = { created_from: "", created_to: "", group: "week" };

const pct = (x) => (x === null || x === undefined ? t("none") : `${Math.round(Number(x) * 100)} %`);
const reasons = (obj) => Object.entries(obj || {}).map(([k, n]) => `${k} (${n})`).join(", ");

export async function renderAnalytics(main) {
  const from = h("input", { name: "created_from", type: "date", value: period.created_from });
  const to = h("input", { name: "created_to", type: "date", value: period.created_to });
  const group = select("group", ["day", "week", "month"].map((g) => [g, t(`an.${g}`)]), period.group);
  const body = h("div", { class: "analytics" }, h("p", { class: "muted" }, t("loading")));
  const form = h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
    field(t("an.from"), from), field(t("an.to"), to), field(t("an.group"), group));
  for (const el of [from, to, group]) {
    el.addEventListener("change", () => {
      period[el.name] = el.value;
      load(body);
    });
  }
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("an.title")), form), body);
  await load(body);
}

async function load(body) {
  const range = { created_from: period.created_from, created_to: period.created_to };
  let stages, funnel, requests, managers;
  try {
    [stages, funnel, requests, managers] = await Promise.all([
      api("GET", "/stages"),
      api("GET", "/analytics/funnel", { query: range }),
      api("GET", "/analytics/requests", { query: { ...range, group: period.group } }),
      api("GET", "/analytics/managers", { query: range }),
    ]);
  } catch (e) {
    clear(body, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const names = new Map(stages.items.map((s) => [s.code, getLang() === "en" ? s.en : s.ru]));
  clear(body, funnelCard(funnel, names), requestsCard(requests), managersCard(managers));
}

const TEXT_COLUMNS = new Set(["an.stage", "an.reasons", "an.period", "an.bySource", "an.manager"]);

function table(id, heads, rows) {
  return h("table", { class: "grid", id },
    h("thead", {}, h("tr", {}, heads.map((k) =>
      h("th", { scope: "col", class: TEXT_COLUMNS.has(k) ? null : "num" }, t(k))))),
    h("tbody", {}, rows));
}

function funnelCard(f, names) {
  return h("section", { class: "card", "aria-labelledby": "an-funnel" },
    h("h2", { id: "an-funnel" }, t("an.funnel")),
    h("p", { class: "muted" }, t("an.funnelSum", {
      created: f.deals_created, won: f.won, lost: f.lost, amount: fmtMoney(f.won_amount) })),
    table("an-funnel-table",
      ["an.stage", "an.reached", "an.share", "an.now", "an.conversion", "an.lost", "an.reasons"],
      f.stages.map((s) => h("tr", { dataset: { stage: s.stage } },
        h("td", {}, names.get(s.stage) || s.stage),
        h("td", { class: "num" }, String(s.reached)),
        h("td", { class: "num" }, pct(s.share_of_created)),
        h("td", { class: "num" }, String(s.now_at_stage)),
        h("td", { class: "num" }, pct(s.conversion_to_next)),
        h("td", { class: "num" }, String(s.lost_here)),
        h("td", {}, reasons(s.loss_reasons))))));
}

function requestsCard(r) {
  return h("section", { class: "card", "aria-labelledby": "an-requests" },
    h("h2", { id: "an-requests" }, t("an.requests")),
    r.items.length
      ? table("an-requests-table",
        ["an.period", "an.count", "an.bySource", "an.refusals", "an.reasons", "an.converted"],
        r.items.map((p) => h("tr", {},
          h("td", {}, p.period),
          h("td", { class: "num" }, String(p.requests)),
          h("td", {}, Object.entries(p.by_source || {})
            .map(([k, n]) => `${tOr(`source.${k}`, k)}: ${n}`).join(", ")),
          h("td", { class: "num" }, String(p.refusals)),
          h("td", {}, reasons(p.refusal_reasons)),
          h("td", { class: "num" }, String(p.converted)))))
      : h("p", { class: "muted" }, t("empty")));
}

function managersCard(m) {
  const n = (v) => h("td", { class: "num" }, String(v || 0));
  return h("section", { class: "card", "aria-labelledby": "an-managers" },
    h("h2", { id: "an-managers" }, t("an.managers")),
    table("an-managers-table",
      ["an.manager", "an.leads", "an.leadsNew", "an.calls", "an.callsAnswered", "an.emails", "an.tasksOpen"],
      m.items.map((u) => h("tr", { dataset: { userId: String(u.user_id) } },
        h("td", {}, u.name || `#${u.user_id}`,
          h("div", { class: "muted small" }, tOr(`role.${u.role}`, u.role))),
        n(u.leads), n(u.leads_new), n(u.calls), n(u.calls_answered), n(u.email_sent),
        n(u.tasks_open)))));
}
