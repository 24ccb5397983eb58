// Deals as a board per pipeline: a column per open stage, won/lost drop zones; move a deal
// by drag and drop (HTML5) or with its stage select; filters by owner, amount and dates.
import { api } from "./api.js";
import {
  decimal, loadPipelines, nameOf, openDealForm, openLoseDialog, winDeal,
} from "./dealform.js";
import { clear, field, fmtMoney, h, select, toast } from "./dom.js";
import { addStrings, getLang, plural, t } from "./i18n.js";
import { openNewPipeline, openPipelineSettings } from "./pipelineform.js";
import { ownerName, state } from "./state.js";

addStrings({
  ru: {
    "board.filters": "Фильтры", "board.owner": "Ответственный", "board.anyone": "Все",
    "board.amountMin": "Сумма от", "board.amountMax": "Сумма до",
    "board.from": "Создана с", "board.to": "Создана по", "board.apply": "Применить",
    "board.reset": "Сбросить", "board.dropWon": "Выиграна", "board.dropLost": "Проиграна",
    "board.closed": "Закрыть сделку", "board.more": "Показаны {n} из {total}",
  },
  en: {
    "board.filters": "Filters", "board.owner": "Owner", "board.anyone": "Everyone",
    "board.amountMin": "Amount from", "board.amountMax": "Amount to",
    "board.from": "Created from", "board.to": "Created to", "board.apply": "Apply",
    "board.reset": "Reset", "board.dropWon": "Won", "board.dropLost": "Lost",
    "board.closed": "Close the deal", "board.more": "Showing {n} of {total}",
  },
});

const filters = { owner_id: "", amount_min: "", amount_max: "", created_from: "", created_to: "" };
let current = null; // the pipeline shown

export async function renderDeals(main) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  let pipelines;
  try {
    pipelines = await loadPipelines(true);
  } catch (e) {
    clear(main, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  if (!pipelines.some((p) => p.id === current)) {
    current = (pipelines.find((p) => p.is_default) || pipelines[0]).id;
  }
  const switcher = select("pipeline", pipelines.map((p) => [String(p.id), nameOf(p)]), String(current));
  switcher.id = "pipeline-switch";
  const body = h("div", { id: "board-wrap" });
  const reload = () => loadBoard(body, pipelines.find((p) => p.id === current), reload);
  switcher.addEventListener("change", () => {
    current = Number(switcher.value);
    reload();
  });
  const add = h("button", { type: "button", class: "primary", id: "deal-new",
    onclick: () => openDealForm(null, { pipeline_id: current }, () => reload()) }, t("deal.new"));
  const admin = state.me && state.me.role === "admin";
  const settings = admin ? [
    h("button", { type: "button", id: "pipeline-settings", onclick: () => openPipelineSettings(
      pipelines.find((p) => p.id === current), () => renderDeals(main)) }, t("pf.edit")),
    h("button", { type: "button", id: "pipeline-new", onclick: () => openNewPipeline((p) => {
      current = p.id;
      return renderDeals(main);
    }) }, t("pf.new")),
  ] : null;
  clear(main,
    h("div", { class: "view-head" }, h("h1", {}, t("deals.title")),
      field(t("deal.pipeline"), switcher), add, settings),
    filterForm(reload),
    body);
  await reload();
}

function filterForm(reload) {
  const owners = state.me && state.me.role !== "manager"
    ? select("owner_id", [["", t("board.anyone")],
      ...[...state.users.entries()].map(([id, name]) => [String(id), name])], filters.owner_id)
    : null;
  const input = (name, type = "text") => h("input", { name, type, value: filters[name],
    inputmode: type === "text" ? "decimal" : null });
  const form = h("form", { class: "filters board-filters", role: "search", "aria-label": t("board.filters") },
    owners ? field(t("board.owner"), owners) : null,
    field(t("board.amountMin"), input("amount_min")),
    field(t("board.amountMax"), input("amount_max")),
    field(t("board.from"), input("created_from", "date")),
    field(t("board.to"), input("created_to", "date")),
    h("button", { type: "submit", class: "primary" }, t("board.apply")),
    h("button", { type: "reset" }, t("board.reset")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    for (const name of Object.keys(filters)) {
      const el = form.elements[name];
      filters[name] = el ? (name.startsWith("amount") ? decimal(el.value) : el.value) : "";
    }
    reload();
  });
  form.addEventListener("reset", () => {
    for (const name of Object.keys(filters)) filters[name] = "";
    setTimeout(reload, 0);
  });
  return form;
}

let loads = 0; // the newest load wins: a slow answer never replaces a newer board

async function loadBoard(body, pipeline, reload) {
  const mine = ++loads;
  let board;
  try {
    board = await api("GET", "/deals/board", { query: { pipeline_id: pipeline.id, ...filters, per_stage: 100 } });
    if (mine !== loads) return;
  } catch (e) {
    clear(body, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const stages = board.pipeline.stages;
  const byCode = new Map(board.columns.map((c) => [c.stage, c]));
  const open = stages.filter((s) => !s.closed);
  const columns = open.map((st) => {
    const col = byCode.get(st.code) || { count: 0, amount: "0", items: [] };
    const el = h("section", { class: "column", "aria-label": nameOf(st), dataset: { stage: st.code } },
      h("header", {}, h("h2", {}, nameOf(st)),
        h("span", { class: "muted small" }, t("deals.total",
          { n: col.count, deals: plural(col.count, "deals.forms"), sum: fmtMoney(col.amount) })),
        st.probability ? h("span", { class: "muted small" }, ` · ${st.probability}%`) : null),
      h("ul", { class: "plain" }, col.items.map((d) => dealCard(d, stages, reload))),
      col.count > col.items.length
        ? h("p", { class: "muted small" }, t("board.more", { n: col.items.length, total: col.count })) : null);
    dropTarget(el, st.code, reload);
    return el;
  });
  const closers = stages.filter((s) => s.closed).map((st) => {
    const col = byCode.get(st.code) || { count: 0, amount: "0" };
    const el = h("div", { class: `dropzone ${st.kind}`, dataset: { stage: st.code },
      "aria-label": `${t("board.closed")}: ${nameOf(st)}` },
    h("strong", {}, nameOf(st)), " ",
    h("span", { class: "muted small" }, t("deals.total",
      { n: col.count, deals: plural(col.count, "deals.forms"), sum: fmtMoney(col.amount) })));
    dropTarget(el, st.code, reload);
    return el;
  });
  clear(body, h("div", { class: "board", id: "deals-board" }, columns),
    h("div", { class: "closers", id: "deal-closers" }, closers));
}

function dropTarget(el, stage, reload) {
  el.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    el.classList.add("over");
  });
  el.addEventListener("dragleave", () => el.classList.remove("over"));
  el.addEventListener("drop", (ev) => {
    ev.preventDefault();
    el.classList.remove("over");
    const raw = ev.dataTransfer.getData("application/x-deal");
    if (!raw) return;
    const deal = JSON.parse(raw);
    if (deal.stage !== stage) move(deal, stage, reload);
  });
}

function dealCard(d, stages, reload) {
  const sel = h("select", { name: "stage", "aria-label": `${t("deals.move")}: ${d.title}` },
    stages.map((st) => h("option", { value: st.code, selected: st.code === d.stage }, nameOf(st))));
  const err = h("p", { class: "field-error", role: "alert" });
  sel.addEventListener("change", () => move(d, sel.value, reload, err).then(() => { sel.value = d.stage; }));
  const card = h("li", { class: "deal", draggable: "true", dataset: { dealId: String(d.id) } },
    h("a", { href: `#/deals/${d.id}`, class: "deal-link" }, h("strong", {}, d.title)),
    h("div", { class: "amount" }, fmtMoney(d.amount, d.currency)),
    h("div", { class: "muted small" },
      h("a", { href: `#/clients/${d.client_id}` }, d.client_name || `${t("deals.client")} #${d.client_id}`),
      " · ", ownerName(d.owner_id)),
    sel, err);
  card.addEventListener("dragstart", (ev) => {
    ev.dataTransfer.setData("application/x-deal", JSON.stringify({ id: d.id, stage: d.stage, title: d.title, pipeline_id: d.pipeline_id }));
    ev.dataTransfer.effectAllowed = "move";
    card.classList.add("dragging");
  });
  card.addEventListener("dragend", () => card.classList.remove("dragging"));
  return card;
}

/** Move `deal` to `stage`: won closes it, lost asks for the reason first. */
async function move(deal, stage, reload, err) {
  try {
    if (stage === "lost") {
      await openLoseDialog(deal, reload);
      return;
    }
    const out = stage === "won" ? await winDeal(deal)
      : await api("POST", `/deals/${deal.id}/stage`, { body: { stage } });
    if (stage !== "won") {
      toast(t("deals.moved", { stage: getLang() === "en" ? out.stage_label_en : out.stage_label }), "ok");
    }
    await reload();
  } catch (e) {
    if (err) err.textContent = e.message;
    toast(`${t("error")}: ${e.message}`, "error");
  }
}
