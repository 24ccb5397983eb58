// Deals in dialogs: create or edit a deal (with line items), lose it with a reason from
// its pipeline's catalogue, and the pipelines themselves (GET /api/v1/pipelines).
import { api } from "./api.js";
import { clear, field, fmtMoney, h, select, toast } from "./dom.js";
import { addStrings, getLang, t } from "./i18n.js";
import { openForm } from "./modal.js";
import { state } from "./state.js";

addStrings({
  ru: {
    "deal.deal": "Сделка", "deal.new": "Новая сделка", "deal.edit": "Изменить", "deal.editTitle": "Изменить сделку",
    "deal.title": "Название", "deal.client": "Клиент", "deal.findClient": "Найти клиента",
    "deal.pipeline": "Воронка", "deal.stage": "Этап", "deal.owner": "Ответственный",
    "deal.amount": "Сумма, ₽", "deal.amountFromItems": "сумма позиций",
    "deal.items": "Позиции", "deal.item": "Позиция", "deal.qty": "Кол-во", "deal.unit": "Ед.",
    "deal.price": "Цена", "deal.discount": "Скидка, %", "deal.total": "Итого",
    "deal.addItem": "+ Позиция", "deal.removeItem": "Убрать позицию",
    "deal.create": "Создать", "deal.created": "Сделка «{title}» создана",
    "deal.saved": "Сделка сохранена", "deal.noClient": "Выберите клиента",
    "deal.lose": "Проиграна", "deal.loseTitle": "Сделка проиграна: {title}",
    "deal.reason": "Причина", "deal.comment": "Комментарий", "deal.lost": "Сделка проиграна",
    "deal.win": "Выиграна", "deal.won": "Сделка выиграна", "deal.reopen": "Вернуть в работу",
    "deal.reopened": "Сделка снова в работе", "deal.chooseReason": "Выберите причину",
  },
  en: {
    "deal.deal": "Deal", "deal.new": "New deal", "deal.edit": "Edit", "deal.editTitle": "Edit the deal",
    "deal.title": "Title", "deal.client": "Client", "deal.findClient": "Find a client",
    "deal.pipeline": "Pipeline", "deal.stage": "Stage", "deal.owner": "Owner",
    "deal.amount": "Amount, ₽", "deal.amountFromItems": "sum of the items",
    "deal.items": "Line items", "deal.item": "Item", "deal.qty": "Qty", "deal.unit": "Unit",
    "deal.price": "Price", "deal.discount": "Discount, %", "deal.total": "Total",
    "deal.addItem": "+ Item", "deal.removeItem": "Remove the item",
    "deal.create": "Create", "deal.created": "Deal “{title}” created",
    "deal.saved": "Deal saved", "deal.noClient": "Choose a client",
    "deal.lose": "Lost", "deal.loseTitle": "Deal lost: {title}",
    "deal.reason": "Reason", "deal.comment": "Comment", "deal.lost": "Deal lost",
    "deal.win": "Won", "deal.won": "Deal won", "deal.reopen": "Reopen",
    "deal.reopened": "The deal is open again", "deal.chooseReason": "Choose a reason",
  },
});

let cache = null;

/** Every pipeline with its stages and loss reasons (cached for the page's life). */
export async function loadPipelines(force = false) {
  if (!cache || force) cache = (await api("GET", "/pipelines")).items;
  return cache;
}

export const nameOf = (x) => (getLang() === "en" ? x.name_en || x.name : x.name);

export function stageName(deal) {
  return getLang() === "en" ? deal.stage_label_en : deal.stage_label;
}

export async function pipelineOf(deal) {
  const all = await loadPipelines();
  return all.find((p) => p.id === deal.pipeline_id) || all[0];
}

/** A number typed the Russian way ("250 000,5") as the API wants it ("250000.5"). */
export function decimal(text) {
  return String(text || "").replace(/\s/g, "").replace(",", ".");
}

function itemsEditor(items, amountInput) {
  const rows = h("tbody", {});
  const total = h("output", { class: "items-total" });
  const errId = "items-error";
  const set = h("fieldset", { name: "items", class: "items", "aria-describedby": errId },
    h("legend", {}, t("deal.items")),
    h("div", { class: "table-wrap" }, h("table", { class: "grid items-table" },
      h("thead", {}, h("tr", {}, ["deal.item", "deal.qty", "deal.unit", "deal.price",
        "deal.discount", ""].map((k) => h("th", { scope: "col" }, k ? t(k) : "")))),
      rows)),
    h("div", { class: "row between" },
      h("button", { type: "button", class: "small", onclick: () => add({}) }, t("deal.addItem")),
      h("span", {}, `${t("deal.total")}: `, total)),
    h("p", { id: errId, class: "field-error", role: "alert" }));

  function recompute() {
    const lines = read();
    const sum = lines.reduce((acc, i) => acc + Number(i.quantity || 0) * Number(i.price || 0)
      * (100 - Number(i.discount || 0)) / 100, 0);
    total.textContent = fmtMoney(sum);
    amountInput.disabled = lines.length > 0;
    if (lines.length) amountInput.value = String(Math.round(sum * 100) / 100);
  }

  function add(item) {
    const cell = (name, value, attrs = {}) => h("td", {}, h("input", {
      name: `item_${name}`, value: value ?? "", "aria-label": t(`deal.${name === "quantity" ? "qty" : name === "name" ? "item" : name}`),
      oninput: recompute, ...attrs,
    }));
    const tr = h("tr", { class: "item-row" },
      cell("name", item.name, { maxlength: 300 }),
      cell("quantity", item.quantity ?? "1", { inputmode: "decimal", size: 4 }),
      cell("unit", item.unit ?? "шт", { maxlength: 20, size: 4 }),
      cell("price", item.price, { inputmode: "decimal", size: 8 }),
      cell("discount", item.discount && Number(item.discount) ? item.discount : "", { inputmode: "decimal", size: 4 }),
      h("td", {}, h("button", { type: "button", class: "small link", "aria-label": t("deal.removeItem"),
        onclick: () => { tr.remove(); recompute(); } }, "✕")));
    rows.append(tr);
    recompute();
    return tr;
  }

  function read() {
    return [...rows.querySelectorAll("tr")].map((tr) => {
      const v = (n) => tr.querySelector(`[name=item_${n}]`).value.trim();
      return { name: v("name"), quantity: decimal(v("quantity")) || "1", unit: v("unit") || "шт",
        price: decimal(v("price")) || "0", discount: decimal(v("discount")) || "0" };
    }).filter((i) => i.name || Number(i.price));
  }

  for (const item of items || []) add(item);
  recompute();
  return { element: set, read, add };
}

function ownerSelect(value) {
  if (!state.me || state.me.role === "manager") return null;
  const opts = [...state.users.entries()].map(([id, name]) => [String(id), name]);
  return select("owner_id", opts, String(value ?? state.me.id));
}

async function clientPicker(preset) {
  const sel = h("select", { name: "client_id", required: true });
  const fill = (items) => clear(sel, items.map((c) => h("option", { value: String(c.id) }, c.name)));
  if (preset) {
    fill([{ id: preset.id, name: preset.name }]);
    return { fields: [field(t("deal.client"), sel)] };
  }
  const search = h("input", { type: "search", name: "client_q", autocomplete: "off" });
  let timer = null;
  const load = async () => {
    const page = await api("GET", "/clients", { query: { q: search.value.trim(), limit: 20 } });
    fill(page.items);
  };
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => load().catch(() => {}), 250);
  });
  await load().catch(() => fill([]));
  return { fields: [field(t("deal.findClient"), search), field(t("deal.client"), sel)] };
}

/**
 * Create a deal (`deal` null; `preset`: {client, pipeline_id, stage}) or edit one.
 * `done(deal)` runs after the server accepted it.
 */
export async function openDealForm(deal, preset, done) {
  const pipelines = await loadPipelines();
  const title = h("input", { name: "title", required: true, maxlength: 300, value: deal ? deal.title : "" });
  const amount = h("input", { name: "amount", inputmode: "decimal",
    value: deal && deal.amount ? deal.amount : "" });
  const items = itemsEditor(deal ? deal.items : [], amount);
  const owner = ownerSelect(deal ? deal.owner_id : null);
  const fields = [field(t("deal.title"), title)];
  let pipelineSel = null;
  let stageSel = null;
  if (!deal) {
    fields.push(...(await clientPicker(preset && preset.client)).fields);
    const pid = String((preset && preset.pipeline_id) || (pipelines.find((p) => p.is_default) || pipelines[0]).id);
    pipelineSel = select("pipeline_id", pipelines.map((p) => [String(p.id), nameOf(p)]), pid);
    stageSel = h("select", { name: "stage" });
    const fillStages = () => {
      const p = pipelines.find((x) => String(x.id) === pipelineSel.value);
      clear(stageSel, p.stages.filter((s) => !s.closed).map((s) => h("option",
        { value: s.code, selected: preset && s.code === preset.stage }, nameOf(s))));
    };
    pipelineSel.addEventListener("change", fillStages);
    fillStages();
    fields.push(field(t("deal.pipeline"), pipelineSel), field(t("deal.stage"), stageSel));
  }
  if (owner) fields.push(field(t("deal.owner"), owner));
  fields.push(field(t("deal.amount"), amount), items.element);
  const form = openForm(deal ? t("deal.editTitle") : t("deal.new"), fields, async (v) => {
    const lines = items.read();
    const body = { title: v.title };
    if (owner) body.owner_id = Number(v.owner_id);
    if (lines.length) body.items = lines;
    else {
      if (deal && deal.items.length) body.items = [];
      body.amount = v.amount ? decimal(v.amount) : null;
    }
    let out;
    if (deal) {
      out = await api("PATCH", `/deals/${deal.id}`, { body });
      toast(t("deal.saved"), "ok");
    } else {
      if (!v.client_id) throw { message: t("deal.noClient"), field: "client_id" };
      Object.assign(body, { client_id: Number(v.client_id), pipeline_id: Number(v.pipeline_id),
        stage: v.stage });
      if (body.amount === null) delete body.amount;
      out = await api("POST", "/deals", { body });
      toast(t("deal.created", { title: out.title }), "ok");
    }
    await done?.(out);
  }, deal ? t("save") : t("deal.create"));
  form.classList.add("deal-form");
  return form;
}

/** Lose a deal: a reason from its pipeline's catalogue and a comment. */
export async function openLoseDialog(deal, done) {
  const p = await pipelineOf(deal);
  const reasons = p.loss_reasons.filter((r) => r.active);
  const reason = select("reason_id", [["", t("deal.chooseReason")],
    ...reasons.map((r) => [String(r.id), nameOf(r)])], "");
  const comment = h("textarea", { name: "comment", rows: 3, maxlength: 2000 });
  openForm(t("deal.loseTitle", { title: deal.title }),
    [field(t("deal.reason"), reason), field(t("deal.comment"), comment)],
    async (v) => {
      const body = { comment: v.comment || null };
      if (v.reason_id) body.reason_id = Number(v.reason_id);
      const out = await api("POST", `/deals/${deal.id}/lose`, { body });
      toast(t("deal.lost"), "ok");
      await done?.(out);
    }, t("deal.lose"));
}

export async function winDeal(deal) {
  const out = await api("POST", `/deals/${deal.id}/win`, { body: {} });
  toast(t("deal.won"), "ok");
  return out;
}

export async function reopenDeal(deal) {
  const out = await api("POST", `/deals/${deal.id}/reopen`, { body: {} });
  toast(t("deal.reopened"), "ok");
  return out;
}
