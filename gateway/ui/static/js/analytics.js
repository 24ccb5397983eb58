// Analytics for heads of sales: the funnel, requests and refusals per period by channel,
// manager activity, sales (by period, manager, segment, season), plan against fact, and
// the most promising clients with their reasons.  Every card has its chart (SVG drawn by
// the server, no script) above its table, and CSV / XLSX downloads of the same rows.
// What a user sees is scoped by their role on the server (a manager: their own work).
import { api, ApiError } from "./api.js";
import { clear, field, fmtDate, fmtDuration, fmtMoney, h, select, toast } from "./dom.js";
import { addStrings, getLang, t, tOr } from "./i18n.js";

addStrings({
  ru: {
    "an.sales": "Продажи", "an.salesBy": "Разрез продаж", "an.byManager": "по менеджерам",
    "an.bySegment": "по сегментам", "an.bySeason": "по сезону (месяц года)",
    "an.group_key": "Группа", "an.deals": "Сделок", "an.amount": "Сумма",
    "an.salesSum": "Выиграно сделок: {deals} на {amount}",
    "an.planFact": "План и факт", "an.planPeriod": "План на (месяц или квартал)",
    "an.planPeriodHint": "2026-12 или 2026-Q4",
    "an.plan": "план", "an.fact": "факт", "an.calls": "Звонков", "an.meetings": "Встреч",
    "an.team": "команда", "an.promising": "Перспективные клиенты",
    "an.promisingHint": "Баллы: активность за 30 дней, открытая сделка (этап и сумма), прошлые покупки, как отвечает на звонки",
    "an.rank": "№", "an.client": "Клиент", "an.score": "Баллы", "an.why": "Почему",
    "why.activity": "{n} контактов за 30 дней, входящих {inbound}",
    "why.deal": "сделка «{stage}» на {amount}", "why.purchases": "покупок {n} на {amount}",
    "why.answers": "отвечает на {rate} звонков", "why.ring": "снимает трубку за {s} с",
    "an.callsOut": "Исходящих", "an.talk": "Разговоры", "an.firstResponse": "Первый ответ",
    "an.tasksDone": "Задач выполнено", "an.overdue": "Просрочено", "an.won": "Выиграно",
    "an.csv": "CSV", "an.xlsx": "Excel", "an.download": "Скачать {what}: {fmt}",
    "an.chart": "График: {what}", "an.refusalsByChannel": "Отказы по каналам",
    "an.year": "год",
    "an.campaigns": "Рассылки: ответы, лиды и сделки", "an.campaign": "Рассылка",
    "an.cRecipients": "Получателей", "an.cSent": "Отправлено", "an.cReplied": "Ответили",
    "an.cLeads": "Лидов", "an.cDeals": "Сделок", "an.cWon": "Выиграно",
    "an.cHint": "Лиды и сделки клиентов, ответивших на рассылку, созданные в течение {days} дней после письма",
  },
  en: {
    "an.sales": "Sales", "an.salesBy": "Sales by", "an.byManager": "by manager",
    "an.bySegment": "by segment", "an.bySeason": "by season (month of year)",
    "an.group_key": "Group", "an.deals": "Deals", "an.amount": "Amount",
    "an.salesSum": "Deals won: {deals} worth {amount}",
    "an.planFact": "Plan and fact", "an.planPeriod": "Plan for (month or quarter)",
    "an.planPeriodHint": "2026-12 or 2026-Q4",
    "an.plan": "plan", "an.fact": "fact", "an.calls": "Calls", "an.meetings": "Meetings",
    "an.team": "team", "an.promising": "Most promising clients",
    "an.promisingHint": "Points: activity in 30 days, open deal (stage and amount), past purchases, how they answer calls",
    "an.rank": "#", "an.client": "Client", "an.score": "Points", "an.why": "Why",
    "why.activity": "{n} contacts in 30 days, {inbound} inbound",
    "why.deal": "deal at “{stage}” worth {amount}", "why.purchases": "{n} purchases worth {amount}",
    "why.answers": "answers {rate} of calls", "why.ring": "picks up in {s} s",
    "an.callsOut": "Made", "an.talk": "Talk time", "an.firstResponse": "First response",
    "an.tasksDone": "Tasks done", "an.overdue": "Overdue", "an.won": "Won",
    "an.csv": "CSV", "an.xlsx": "Excel", "an.download": "Download {what}: {fmt}",
    "an.chart": "Chart: {what}", "an.refusalsByChannel": "Refusals by channel",
    "an.year": "year",
    "an.campaigns": "Campaigns: replies, leads and deals", "an.campaign": "Campaign",
    "an.cRecipients": "Recipients", "an.cSent": "Sent", "an.cReplied": "Replied",
    "an.cLeads": "Leads", "an.cDeals": "Deals", "an.cWon": "Won",
    "an.cHint": "Leads and deals of the clients who replied, created within {days} days of the message",
  },
});

const thisMonth = () => new Date().toISOString().slice(0, 7);
const period = { created_from: "", created_to: "", group: "week", sales: "month", plan: thisMonth() };

const pct = (x) => (x === null || x === undefined ? t("none") : `${Math.round(Number(x) * 100)} %`);
const reasons = (obj) => Object.entries(obj || {}).map(([k, n]) => `${k} (${n})`).join(", ");
const bySource = (obj) => Object.entries(obj || {})
  .map(([k, n]) => `${tOr(`source.${k}`, k)}: ${n}`).join(", ");

/** GET a report as text or a Blob (a chart, a file) with the signed-in user's token. */
async function fetchRaw(path, query, as = "text") {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const resp = await fetch(url, { credentials: "same-origin" });
  if (!resp.ok) {
    let message = resp.statusText;
    try {
      const data = await resp.json();
      message = (getLang() === "ru" && data.error_ru) || data.error || message;
    } catch {
      /* not JSON */
    }
    throw new ApiError(resp.status, message);
  }
  return as === "blob" ? resp.blob() : resp.text();
}

/** The chart of a report: the server's SVG, parsed as SVG (never as HTML), scripts dropped. */
function chart(path, query, title) {
  const box = h("figure", { class: "chart", "aria-label": t("an.chart", { what: title }) },
    h("p", { class: "muted" }, t("loading")));
  fetchRaw(path, { ...query, format: "svg", lang: getLang() }).then((text) => {
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    const svg = doc.documentElement;
    if (svg.nodeName !== "svg") throw new Error("not an SVG");
    for (const s of svg.querySelectorAll("script, foreignObject")) s.remove();
    clear(box, document.importNode(svg, true));
  }).catch((e) => clear(box, h("p", { class: "field-error", role: "alert" }, e.message)));
  return box;
}

function downloads(path, query, name, title) {
  const get = async (fmt) => {
    try {
      const blob = await fetchRaw(path, { ...query, format: fmt, lang: getLang() }, "blob");
      const a = h("a", { href: URL.createObjectURL(blob), download: `crmhub-${name}.${fmt}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) {
      toast(e.message, "error");
    }
  };
  return h("div", { class: "row downloads" },
    ["csv", "xlsx"].map((fmt) => h("button", {
      type: "button", class: "small", dataset: { format: fmt, report: name },
      "aria-label": t("an.download", { what: title, fmt: t(`an.${fmt}`) }),
      onclick: () => get(fmt),
    }, t(`an.${fmt}`))));
}

/** A report card: heading, downloads, chart, then whatever tables and notes follow. */
function card(id, title, path, query, ...content) {
  return h("section", { class: "card", "aria-labelledby": id, dataset: { report: id } },
    h("div", { class: "card-head" }, h("h2", { id }, title), downloads(path, query, id.slice(3), title)),
    chart(path, query, title),
    ...content);
}

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
  const sales = h("div", { class: "an-slot" });
  const planFact = h("div", { class: "an-slot" });
  const promising = h("div", { class: "an-slot" });
  const campaigns = h("div", { class: "an-slot" });
  clear(body, funnelCard(funnel, names, range), requestsCard(requests, range),
    managersCard(managers, range), sales, planFact, promising, campaigns);
  await Promise.all([
    loadSales(sales, range), loadPlanFact(planFact), loadPromising(promising, names),
    loadCampaigns(campaigns, range)]);
}

const TEXT_COLUMNS = new Set([
  "an.stage", "an.reasons", "an.period", "an.bySource", "an.manager", "an.group_key",
  "an.client", "an.why", "an.refusalsByChannel", "an.campaign",
]);

function table(id, heads, rows) {
  return h("div", { class: "table-wrap" }, h("table", { class: "grid", id },
    h("thead", {}, h("tr", {}, heads.map((k) =>
      h("th", { scope: "col", class: TEXT_COLUMNS.has(k) ? null : "num" }, t(k))))),
    h("tbody", {}, rows)));
}

const num = (v) => h("td", { class: "num" }, String(v || 0));

function funnelCard(f, names, range) {
  return card("an-funnel", t("an.funnel"), "/analytics/funnel", range,
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

function requestsCard(r, range) {
  const query = { ...range, group: period.group };
  return card("an-requests", t("an.requests"), "/analytics/requests", query,
    r.items.length
      ? table("an-requests-table",
        ["an.period", "an.count", "an.bySource", "an.refusals", "an.refusalsByChannel",
          "an.reasons", "an.converted"],
        r.items.map((p) => h("tr", {},
          h("td", {}, p.period),
          h("td", { class: "num" }, String(p.requests)),
          h("td", {}, bySource(p.by_source)),
          h("td", { class: "num" }, String(p.refusals)),
          h("td", {}, bySource(p.refusals_by_source)),
          h("td", {}, reasons(p.refusal_reasons)),
          h("td", { class: "num" }, String(p.converted)))))
      : h("p", { class: "muted" }, t("empty")));
}

function managersCard(m, range) {
  return card("an-managers", t("an.managers"), "/analytics/managers", range,
    table("an-managers-table",
      ["an.manager", "an.leads", "an.leadsNew", "an.calls", "an.callsOut", "an.callsAnswered",
        "an.talk", "an.emails", "an.firstResponse", "an.tasksOpen", "an.tasksDone",
        "an.overdue", "an.won"],
      m.items.map((u) => h("tr", { dataset: { userId: String(u.user_id) } },
        h("td", {}, u.name || `#${u.user_id}`,
          h("div", { class: "muted small" }, tOr(`role.${u.role}`, u.role))),
        num(u.leads), num(u.leads_new), num(u.calls), num(u.calls_out), num(u.calls_answered),
        h("td", { class: "num" }, fmtDuration(u.talk_s || 0)), num(u.email_sent),
        h("td", { class: "num" },
          u.first_response_n ? fmtDuration(u.first_response_avg_s) : t("none")),
        num(u.tasks_open), num(u.tasks_done), num(u.tasks_overdue),
        h("td", { class: "num" }, `${u.deals_won || 0} / ${fmtMoney(u.won_amount_total || 0)}`)))));
}

async function loadSales(slot, range) {
  const by = select("sales_group", [
    ["month", t("an.month")], ["week", t("an.week")], ["day", t("an.day")],
    ["manager", t("an.byManager")], ["segment", t("an.bySegment")], ["season", t("an.bySeason")],
  ], period.sales);
  by.addEventListener("change", () => {
    period.sales = by.value;
    loadSales(slot, range);
  });
  const query = { ...range, group: period.sales };
  let data;
  try {
    data = await api("GET", "/analytics/sales", { query });
  } catch (e) {
    clear(slot, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const season = data.group === "season";
  const years = data.years || [];
  clear(slot, card("an-sales", t("an.sales"), "/analytics/sales", query,
    h("div", { class: "filters" }, field(t("an.salesBy"), by)),
    h("p", { class: "muted" }, t("an.salesSum", { deals: data.deals, amount: fmtMoney(data.amount) })),
    data.items.length
      ? table("an-sales-table",
        ["an.group_key", "an.deals", "an.amount", ...(season ? years : [])],
        data.items.map((i) => h("tr", { dataset: { key: String(i.key ?? "") } },
          h("td", {}, i.label),
          num(i.deals),
          h("td", { class: "num" }, fmtMoney(i.amount)),
          ...(season ? years.map((y) => h("td", { class: "num" },
            i.by_year && i.by_year[y] ? fmtMoney(i.by_year[y]) : t("none"))) : []))))
      : h("p", { class: "muted" }, t("empty"))));
}

async function loadPlanFact(slot) {
  const input = h("input", {
    name: "plan_period", value: period.plan, placeholder: t("an.planPeriodHint"),
    pattern: "\\d{4}-(\\d{2}|Q[1-4])", autocomplete: "off",
  });
  input.addEventListener("change", () => {
    period.plan = input.value.trim();
    loadPlanFact(slot);
  });
  const query = { period: period.plan };
  let data;
  try {
    data = await api("GET", "/analytics/plan-fact", { query });
  } catch (e) {
    clear(slot, h("section", { class: "card" }, h("h2", {}, t("an.planFact")),
      h("div", { class: "filters" }, field(t("an.planPeriod"), input)),
      h("p", { class: "field-error", role: "alert" }, e.message)));
    return;
  }
  const figure = (i, k, money) => {
    const plan = i[`plan_${k}`];
    const fact = i[`fact_${k}`];
    const show = (v) => (money ? fmtMoney(v) : String(v));
    const pctText = i[`pct_${k}`] === null ? "" : ` (${i[`pct_${k}`]} %)`;
    return h("td", { class: "num" }, `${show(fact)} / ${plan === null ? t("none") : show(plan)}${pctText}`);
  };
  clear(slot, card("an-plan", t("an.planFact"), "/analytics/plan-fact", query,
    h("div", { class: "filters" }, field(t("an.planPeriod"), input)),
    h("p", { class: "muted" }, `${t("an.fact")} / ${t("an.plan")}`),
    table("an-plan-table", ["an.manager", "an.amount", "an.deals", "an.calls", "an.meetings"],
      data.items.map((i) => h("tr", { dataset: { kind: i.kind, userId: String(i.user_id ?? "") } },
        h("td", {}, i.kind === "team" ? `${i.name} (${t("an.team")})` : i.name),
        figure(i, "amount", true), figure(i, "deals"), figure(i, "calls"), figure(i, "meetings"))))));
}

function why(i, names) {
  const out = [];
  if (i.recent_interactions) {
    out.push(t("why.activity", { n: i.recent_interactions, inbound: i.inbound }));
  }
  if (i.open_deals) {
    // the stage's name in its own pipeline (a B2C stage is not one of the default's)
    const stageName = getLang() === "en" ? i.open_stage_name_en : i.open_stage_name;
    out.push(t("why.deal", { stage: stageName || names.get(i.open_stage) || i.open_stage,
      amount: fmtMoney(i.open_amount) }));
  }
  if (i.won_deals) out.push(t("why.purchases", { n: i.won_deals, amount: fmtMoney(i.won_amount) }));
  if (i.answer_rate !== null) out.push(t("why.answers", { rate: pct(i.answer_rate) }));
  if (i.avg_ring_s !== null) out.push(t("why.ring", { s: i.avg_ring_s }));
  return out.join("; ");
}

async function loadPromising(slot, names) {
  let data;
  try {
    data = await api("GET", "/analytics/promising");
  } catch (e) {
    clear(slot, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  clear(slot, card("an-promising", t("an.promising"), "/analytics/promising", {},
    h("p", { class: "muted" }, t("an.promisingHint")),
    data.items.length
      ? table("an-promising-table", ["an.manager", "an.rank", "an.client", "an.score", "an.why"],
        data.items.map((i) => h("tr", { dataset: { clientId: String(i.client_id), score: String(i.score) } },
          h("td", {}, i.owner_name || `#${i.owner_id}`),
          num(i.rank),
          h("td", {}, h("a", { href: `#/clients/${i.client_id}` }, i.client_name),
            h("div", { class: "muted small" }, fmtDate(i.last_contact_at))),
          h("td", { class: "num" }, String(i.score)),
          h("td", {}, why(i, names)))))
      : h("p", { class: "muted" }, t("empty"))));
}

async function loadCampaigns(slot, range) {
  let data;
  try {
    data = await api("GET", "/analytics/campaigns", { query: range });
  } catch (e) {
    clear(slot, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  clear(slot, card("an-campaigns", t("an.campaigns"), "/analytics/campaigns", range,
    h("p", { class: "muted" }, t("an.cHint", { days: data.attribution_days })),
    data.items.length
      ? table("an-campaigns-table",
        ["an.campaign", "an.cRecipients", "an.cSent", "an.cReplied", "an.cLeads", "an.cDeals", "an.cWon"],
        data.items.map((i) => h("tr", { dataset: { campaignId: String(i.campaign_id) } },
          h("td", {}, h("a", { href: `#/campaigns/${i.campaign_id}` }, i.name),
            h("div", { class: "muted small" }, fmtDate(i.started_at))),
          num(i.recipients), num(i.sent), num(i.replied), num(i.leads), num(i.deals),
          h("td", { class: "num" }, `${i.deals_won || 0} / ${fmtMoney(i.won_amount)}`))))
      : h("p", { class: "muted" }, t("empty"))));
}
