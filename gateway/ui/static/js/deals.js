// Deals as a funnel board: a column per stage; move with the stage select or drag and drop.
import { api } from "./api.js";
import { clear, fmtMoney, h, toast } from "./dom.js";
import { getLang, plural, t } from "./i18n.js";
import { ownerName } from "./state.js";

let stages = null;

async function loadStages() {
  if (!stages) stages = (await api("GET", "/stages")).items;
  return stages;
}

const label = (st) => (getLang() === "en" ? st.en : st.ru);

export async function renderDeals(main) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  let all, deals, clients;
  try {
    [all, deals, clients] = await Promise.all([
      loadStages(),
      api("GET", "/deals", { query: { status: "open", limit: 200 } }),
      api("GET", "/clients", { query: { limit: 200 } }),
    ]);
  } catch (e) {
    clear(main, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const names = new Map(clients.items.map((c) => [c.id, c.name]));
  const open = all.filter((s) => !s.closed);
  const board = h("div", { class: "board", id: "deals-board" }, open.map((st) => {
    const items = deals.items.filter((d) => d.stage === st.code);
    const sum = items.reduce((acc, d) => acc + Number(d.amount || 0), 0);
    const col = h("section", { class: "column", "aria-label": label(st), dataset: { stage: st.code } },
      h("header", {}, h("h2", {}, label(st)),
        h("span", { class: "muted small" }, t("deals.total", { n: items.length, deals: plural(items.length, "deals.forms"), sum: fmtMoney(sum) }))),
      h("ul", { class: "plain" }, items.map((d) => dealCard(d, all, names, () => renderDeals(main)))));
    col.addEventListener("dragover", (ev) => ev.preventDefault());
    col.addEventListener("drop", (ev) => {
      ev.preventDefault();
      const id = ev.dataTransfer.getData("text/deal-id");
      if (id) move(Number(id), st.code, () => renderDeals(main));
    });
    return col;
  }));
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("deals.title"))), board);
}

function dealCard(d, all, names, reload) {
  const sel = h("select", { name: "stage", "aria-label": `${t("deals.move")}: ${d.title}` },
    all.map((st) => h("option", { value: st.code, selected: st.code === d.stage }, label(st))));
  const err = h("p", { class: "field-error", role: "alert" });
  sel.addEventListener("change", () => move(d.id, sel.value, reload, err));
  const card = h("li", { class: "deal", draggable: "true", dataset: { dealId: String(d.id) } },
    h("strong", {}, d.title),
    h("div", { class: "amount" }, fmtMoney(d.amount, d.currency)),
    h("div", { class: "muted small" }, h("a", { href: `#/clients/${d.client_id}` }, names.get(d.client_id) || `${t("deals.client")} #${d.client_id}`),
      " · ", ownerName(d.owner_id)),
    sel, err);
  card.addEventListener("dragstart", (ev) => ev.dataTransfer.setData("text/deal-id", String(d.id)));
  return card;
}

async function move(id, stage, reload, err) {
  try {
    const out = await api("POST", `/deals/${id}/stage`, { body: { stage } });
    toast(t("deals.moved", { stage: getLang() === "en" ? out.stage_label_en : out.stage_label }), "ok");
    await reload();
  } catch (e) {
    if (err) err.textContent = e.message;
    toast(`${t("error")}: ${e.message}`, "error");
  }
}
