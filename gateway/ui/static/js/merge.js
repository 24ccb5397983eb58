// Merge two duplicate clients from the client card: pick the duplicate (suggested by
// GET /clients/{id}/duplicates, or found by search), choose field by field whose value
// stays, confirm: POST /clients/{id}/merge.  The duplicate's timeline, contacts, deals,
// tasks, tags and segments move to this client and the duplicate is deleted.
import { api } from "./api.js";
import { field, h, toast } from "./dom.js";
import { addStrings, t, tOr } from "./i18n.js";
import { openForm } from "./modal.js";
import { ownerName } from "./state.js";

addStrings({
  ru: {
    "merge.button": "Объединить",
    "merge.title": "Объединить с дубликатом",
    "merge.keeps": "«{name}» останется; выбранный дубликат перейдёт в него и будет удалён.",
    "merge.search": "Найти дубликат: имя, ИНН, телефон, email",
    "merge.find": "Найти",
    "merge.suggested": "Похожие клиенты",
    "merge.found": "Найдено",
    "merge.none": "Похожих клиентов нет — найдите дубликат поиском.",
    "merge.pick": "Выберите дубликат",
    "merge.next": "Далее",
    "merge.fieldsTitle": "Какие значения оставить",
    "merge.field": "Поле",
    "merge.same": "Остальные поля совпадают или пусты у одного из клиентов: пустые заполнятся.",
    "merge.moves": "Телефоны, почта, контактные лица, история, лиды, сделки, задачи, теги и сегменты «{name}» перейдут к «{keep}», а «{name}» будет удалён.",
    "merge.confirm": "Объединить",
    "merge.done": "Клиенты объединены",
    "merge.r.inn": "ИНН", "merge.r.phone": "телефон", "merge.r.email": "почта",
    "merge.r.name": "похожее название",
    "merge.f.name": "Название", "merge.f.full_name": "Полное наименование", "merge.f.kind": "Тип",
    "merge.f.inn": "ИНН (и КПП)", "merge.f.ogrn": "ОГРН", "merge.f.legal_address": "Юридический адрес",
    "merge.f.actual_address": "Фактический адрес", "merge.f.city": "Город", "merge.f.region": "Регион",
    "merge.f.industry": "Отрасль", "merge.f.activity": "Вид деятельности",
    "merge.f.headcount": "Численность", "merge.f.revenue": "Выручка", "merge.f.website": "Сайт",
    "merge.f.birthday": "Дата рождения", "merge.f.source": "Источник", "merge.f.status": "Статус",
    "merge.f.owner_id": "Ответственный", "merge.f.notes": "Заметки",
  },
  en: {
    "merge.button": "Merge",
    "merge.title": "Merge with a duplicate",
    "merge.keeps": "“{name}” stays; the duplicate you pick is folded into it and deleted.",
    "merge.search": "Find the duplicate: name, INN, phone, email",
    "merge.find": "Search",
    "merge.suggested": "Similar clients",
    "merge.found": "Found",
    "merge.none": "No similar clients: find the duplicate by search.",
    "merge.pick": "Pick the duplicate",
    "merge.next": "Next",
    "merge.fieldsTitle": "Which values to keep",
    "merge.field": "Field",
    "merge.same": "Other fields are equal, or empty on one side: the empty ones are filled.",
    "merge.moves": "Phones, emails, contact persons, timeline, leads, deals, tasks, tags and segments of “{name}” move to “{keep}”, and “{name}” is deleted.",
    "merge.confirm": "Merge",
    "merge.done": "Clients merged",
    "merge.r.inn": "INN", "merge.r.phone": "phone", "merge.r.email": "email",
    "merge.r.name": "similar name",
    "merge.f.name": "Name", "merge.f.full_name": "Full legal name", "merge.f.kind": "Kind",
    "merge.f.inn": "INN (and KPP)", "merge.f.ogrn": "OGRN", "merge.f.legal_address": "Legal address",
    "merge.f.actual_address": "Actual address", "merge.f.city": "City", "merge.f.region": "Region",
    "merge.f.industry": "Industry", "merge.f.activity": "Activity",
    "merge.f.headcount": "Headcount", "merge.f.revenue": "Revenue", "merge.f.website": "Website",
    "merge.f.birthday": "Birthday", "merge.f.source": "Source", "merge.f.status": "Status",
    "merge.f.owner_id": "Owner", "merge.f.notes": "Notes",
  },
});

// The fields a merge chooses between (the API's MERGE_FIELDS the client card shows).
const FIELDS = ["name", "full_name", "kind", "inn", "ogrn", "legal_address", "actual_address",
  "city", "region", "industry", "activity", "headcount", "revenue", "website", "birthday",
  "source", "status", "owner_id", "notes"];

const empty = (v) => v === null || v === undefined || v === "";

function shown(name, value) {
  if (empty(value)) return "—";
  if (name === "owner_id") return ownerName(value);
  if (name === "status") return tOr(`cstatus.${value}`, value);
  if (name === "kind") return tOr(`leads.${value}`, value);
  return String(value);
}

function candidate(c, reasons) {
  const id = `merge-other-${c.id}`;
  const why = (reasons || []).map((r) => t(`merge.r.${r}`)).join(", ");
  return h("li", {},
    h("input", { type: "radio", name: "other_id", value: String(c.id), id }),
    h("label", { for: id }, h("strong", {}, c.name),
      c.inn ? h("span", { class: "muted small" }, ` · ${t("clients.inn")} ${c.inn}`) : null,
      c.phones && c.phones.length ? h("span", { class: "muted small" }, ` · ${c.phones[0]}`) : null,
      why ? h("div", { class: "muted small" }, why) : null));
}

/** The "Merge" button of the client card; `done(client)` after a merge. */
export function mergeButton(client, done) {
  return h("button", { type: "button", class: "small", id: "client-merge",
    onclick: () => openMerge(client, done) }, t("merge.button"));
}

export async function openMerge(client, done) {
  let suggested = [];
  try {
    suggested = (await api("GET", `/clients/${client.id}/duplicates`)).items;
  } catch (e) {
    toast(e.message, "error");
  }
  const list = h("ul", { class: "plain merge-candidates", role: "radiogroup",
    "aria-label": t("merge.pick") });
  const heading = h("h3", { class: "small" });
  const show = (items, title) => {
    heading.textContent = title;
    list.replaceChildren(...(items.length
      ? items.filter((c) => c.id !== client.id).map((c) => candidate(c, c.reasons))
      : [h("li", { class: "muted" }, t("merge.none"))]));
  };
  show(suggested, t("merge.suggested"));
  const q = h("input", { name: "merge-q", type: "search", autocomplete: "off" });
  const find = h("button", { type: "button", id: "merge-find" }, t("merge.find"));
  const search = async () => {
    if (!q.value.trim()) return show(suggested, t("merge.suggested"));
    try {
      const page = await api("GET", "/clients", { query: { q: q.value.trim(), limit: 20 } });
      show(page.items, t("merge.found"));
    } catch (e) {
      toast(e.message, "error");
    }
  };
  find.addEventListener("click", search);
  q.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      search();
    }
  });
  const form = openForm(t("merge.title"), [
    h("p", { class: "muted" }, t("merge.keeps", { name: client.name })),
    h("div", { class: "row merge-search" }, field(t("merge.search"), q), find),
    heading,
    list,
  ], async (values) => {
    if (!values.other_id) throw new Error(t("merge.pick"));
    const other = await api("GET", `/clients/${values.other_id}`);
    setTimeout(() => openChoice(client, other, done), 0); // after this dialog closes
  }, t("merge.next"));
  form.id = "merge-pick-form";
}

function openChoice(keep, other, done) {
  const rows = FIELDS.filter((f) => (f in keep || f in other)
    && !empty(keep[f]) && !empty(other[f]) && String(keep[f]) !== String(other[f]))
    .map((f) => {
      const side = (value, label) => {
        const id = `merge-${f}-${value}`;
        return h("td", {}, h("input", { type: "radio", name: `f:${f}`, value, id,
          checked: value === "this" }), " ", h("label", { for: id }, label));
      };
      return h("tr", {}, h("th", { scope: "row" }, t(`merge.f.${f}`)),
        side("this", shown(f, keep[f])), side("other", shown(f, other[f])));
    });
  const table = rows.length ? h("div", { class: "table-wrap" }, h("table", { class: "grid merge-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("merge.field")),
      h("th", { scope: "col" }, keep.name), h("th", { scope: "col" }, other.name))),
    h("tbody", {}, rows))) : null;
  const form = openForm(t("merge.fieldsTitle"), [
    table,
    h("p", { class: "muted small" }, t("merge.same")),
    h("p", { class: "merge-moves" }, t("merge.moves", { name: other.name, keep: keep.name })),
  ], async (values) => {
    const fields = {};
    for (const [k, v] of Object.entries(values)) if (k.startsWith("f:")) fields[k.slice(2)] = v;
    const out = await api("POST", `/clients/${keep.id}/merge`, { body: { other_id: other.id, fields } });
    toast(t("merge.done"), "ok");
    await done(out);
  }, t("merge.confirm"));
  form.id = "merge-fields-form";
}
