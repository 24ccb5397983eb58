// Clients: the list (search, filters on the profile, sorting, pages) and a client card with
// its whole profile, contact persons, branches, deals and timeline.
import { api } from "./api.js";
import { attachBulk } from "./bulk.js";
import { callButton } from "./call.js";
import { openClientForm } from "./clientform.js";
import { consentSection } from "./consent.js";
import { contactsSection } from "./contacts.js";
import { openDealForm, stageName } from "./dealform.js";
import { clear, field, fmtDate, fmtMoney, h, safeLink, select } from "./dom.js";
import { t } from "./i18n.js";
import { exportControls } from "./export.js";
import { mergeButton } from "./merge.js";
import { activeFields, customText, fieldLabel, loadProfile, profile, statusName } from "./profile.js";
import { segmentSelect } from "./segments.js";
import { conversationCard } from "./timeline.js";
import { ownerName, state } from "./state.js";

const PAGE = 50;
// The list's state survives leaving the view: search, filters, sort and the page.
const list = { q: "", filters: {}, sort: "", cursors: [null] };
const SORTS = [
  ["", "sort.newest"], ["name", "sort.name"], ["-name", "sort.nameDesc"],
  ["-updated_at", "sort.updated"], ["-last_contact_at", "sort.lastContact"],
  ["-revenue", "sort.revenue"], ["-headcount", "sort.headcount"], ["city", "sort.city"],
  ["status", "sort.status"],
];
// The filters of the "more filters" panel: [query name, label key, input type].
const FILTERS = [
  ["city", "cp.city", "text"], ["region", "cp.region", "text"],
  ["industry", "cp.industry", "text"], ["tag", "cp.tag", "text"],
  ["headcount_min", "cp.headcountMin", "number"], ["headcount_max", "cp.headcountMax", "number"],
  ["revenue_min", "cp.revenueMin", "number"], ["revenue_max", "cp.revenueMax", "number"],
];

/** One search box: the server's ``q`` finds a name fragment, an INN, a phone in any
 *  spelling, an email or a contact person's name. */
export function searchQuery(text) {
  const s = text.trim();
  return s ? { q: s } : {};
}

/** The list's query: search, filters (custom fields as cf.<key>), sort, page cursor. */
export function listQuery() {
  const query = { ...searchQuery(list.q), limit: PAGE };
  for (const [k, v] of Object.entries(list.filters)) if (v !== "" && v != null) query[k] = v;
  if (list.sort) query.sort = list.sort;
  const after = list.cursors[list.cursors.length - 1];
  if (after) query.after = after;
  return query;
}

/** The list's search and filters without paging (the export and "all matching"). */
function filtersQuery() {
  const query = listQuery();
  delete query.limit;
  delete query.after;
  delete query.sort;
  return query;
}

/** `q` (from the header's search box, #/clients?q=…) starts a fresh search: it replaces
 *  the last search and clears the filters. */
export async function renderClients(main, q) {
  if (q !== undefined) {
    list.q = q;
    list.filters = {};
    list.cursors = [null];
  }
  clear(main, h("p", { class: "muted" }, t("loading")));
  try {
    await loadProfile();
  } catch (e) {
    clear(main, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const body = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "row between pager", "aria-label": t("pager.label") });
  const form = filterForm(() => {
    list.cursors = [null];
    load(body, pager, form);
  });
  const add = h("button", { type: "button", class: "primary", id: "client-new",
    onclick: () => openClientForm(null, (c) => { location.hash = `#/clients/${c.id}`; }) },
  t("clients.new"));
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("clients.title")), add,
    exportControls(filtersQuery)), form, body, pager);
  await load(body, pager, form);
}

function filterForm(apply) {
  const f = list.filters;
  const input = h("input", { name: "search", type: "search", value: list.q, placeholder: t("clients.search") });
  const statusSel = select("status", [["", t("leads.all")],
    ...profile.statuses.map((s) => [s.key, statusName(s.key)])], f.status || "");
  const kindSel = select("kind", [["", t("leads.all")], ["company", t("leads.company")],
    ["person", t("leads.person")]], f.kind || "");
  const sortSel = select("sort", SORTS.map(([v, k]) => [v, t(k)]), list.sort);
  const segmentSel = segmentSelect(f.segment || "");
  const owners = state.users.size > 1
    ? select("owner_id", [["", t("leads.all")], ...[...state.users].map(([id, n]) => [String(id), n])],
      f.owner_id || "") : null;
  const more = FILTERS.map(([name, key, type]) => field(t(key), h("input", { name, type, value: f[name] ?? "",
    min: type === "number" ? 0 : null, autocomplete: "off" })));
  const custom = activeFields().map((cf) => field(fieldLabel(cf), customFilter(cf, f[`cf.${cf.key}`])));
  const active = [...FILTERS.map(([n]) => n), ...activeFields().map((cf) => `cf.${cf.key}`)]
    .filter((n) => f[n]).length;
  const form = h("form", { class: "filters client-filters", role: "search", id: "client-filters" },
    field(t("clients.search"), input),
    field(t("clients.status"), statusSel),
    field(t("leads.kind"), kindSel),
    field(t("clients.segment"), segmentSel),
    owners ? field(t("clients.owner"), owners) : null,
    field(t("sort.label"), sortSel),
    h("details", { class: "more-filters", open: active > 0 },
      h("summary", {}, active ? t("cp.moreFiltersN", { n: active }) : t("cp.moreFilters")),
      h("div", { class: "filters" }, more, custom)),
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary" }, t("clients.find")),
      h("button", { type: "button", class: "link", id: "filters-reset", onclick: () => {
        list.q = "";
        list.filters = {};
        list.sort = "";
        list.cursors = [null];
        renderClients(document.getElementById("main"));
      } }, t("cp.reset"))),
    h("p", { class: "field-error", role: "alert" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = new FormData(form);
    list.q = String(v.get("search") || "");
    list.sort = String(v.get("sort") || "");
    const next = {};
    for (const [k, val] of v.entries()) {
      if (["search", "sort"].includes(k) || String(val).trim() === "") continue;
      next[k] = String(val).trim();
    }
    list.filters = next;
    apply();
  });
  sortSel.addEventListener("change", () => form.requestSubmit());
  segmentSel.addEventListener("change", () => form.requestSubmit());
  return form;
}

/** A custom field's filter: options for choice and multi, "a..b" ranges for numbers and dates. */
function customFilter(cf, value) {
  const name = `cf.${cf.key}`;
  if (cf.type === "choice" || cf.type === "multi") {
    return select(name, [["", t("leads.all")], ...cf.options.map((o) => [o, o])], value || "");
  }
  const hint = { number: "1..10", date: "2024-01-01..2024-12-31" }[cf.type] || "";
  return h("input", { name, value: value || "", placeholder: hint, autocomplete: "off" });
}

// The list's columns: [header key, cell(c)].  A column added later (a selection checkbox)
// goes here too.
const COLUMNS = [
  ["clients.name", (c) => [h("a", { href: `#/clients/${c.id}` }, c.name),
    c.kind === "company" && c.inn ? h("div", { class: "muted small" }, `${t("clients.inn")} ${c.inn}`) : null,
    c.tags.length ? h("div", { class: "tags" }, c.tags.map((tg) => h("span", { class: "badge tag" }, tg))) : null]],
  ["clients.status", (c) => h("span", { class: `badge cs-${c.status}` }, statusName(c.status))],
  ["cp.city", (c) => [c.city || "", c.industry ? h("div", { class: "muted small" }, c.industry) : null]],
  ["clients.phones", (c) => c.phones.map((p) => h("div", { class: "nowrap" }, p))],
  ["clients.emails", (c) => c.emails.map((e) => h("div", {}, e))],
  ["clients.owner", (c) => ownerName(c.owner_id)],
  ["", (c) => (c.phones.length ? callButton({ client_id: c.id }) : null)],
];

function clientRow(c) {
  return h("tr", { dataset: { clientId: String(c.id) } },
    COLUMNS.map(([key, cell], i) => h("td", { class: i === COLUMNS.length - 1 ? "actions" : null }, cell(c))));
}

async function load(body, pager, form) {
  clear(body, h("p", { class: "muted" }, t("loading")));
  const slot = form.querySelector(":scope > .field-error");
  let page;
  try {
    page = await api("GET", "/clients", { query: listQuery() });
  } catch (e) {
    slot.textContent = e.message;
    clear(body);
    clear(pager);
    return;
  }
  slot.textContent = "";
  if (!page.items.length) {
    clear(body, h("p", { class: "muted empty" }, t("empty")));
  } else {
    clear(body, h("table", { class: "grid", id: "clients-table" },
      h("thead", {}, h("tr", {}, COLUMNS.map(([k]) => h("th", { scope: "col" }, k ? t(k) : "")))),
      h("tbody", {}, page.items.map(clientRow))));
    attachBulk(body, { query: filtersQuery(), total: page.total, reload: () => load(body, pager, form) });
  }
  const first = list.cursors.length === 1;
  const reload = () => load(body, pager, form);
  clear(pager,
    h("span", { class: "muted", id: "clients-total" },
      t(page.total_capped ? "cp.totalCapped" : "leads.total", { n: page.total })),
    h("div", { class: "row" },
      h("button", { type: "button", id: "page-prev", disabled: first, onclick: () => {
        list.cursors.pop();
        reload();
      } }, t("pager.prev")),
      h("button", { type: "button", id: "page-next", disabled: !page.next_after, onclick: () => {
        list.cursors.push(page.next_after);
        reload();
      } }, t("pager.next"))));
}

export async function renderClientCard(main, id) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  let client, deals, timeline;
  try {
    [client, deals, timeline] = await Promise.all([
      api("GET", `/clients/${id}`),
      api("GET", "/deals", { query: { client_id: id, status: "open", limit: 50 } }),
      api("GET", `/clients/${id}/timeline`, { query: { limit: 100 } }),
      loadProfile(),
    ]);
  } catch (e) {
    clear(main, h("a", { href: "#/clients" }, t("clients.back")),
      h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const reload = () => {
    if (location.hash === `#/clients/${id}`) renderClientCard(main, id);
  };
  clear(main,
    h("a", { href: "#/clients", class: "back" }, t("clients.back")),
    h("div", { class: "client-card" },
      h("section", { class: "card", "aria-labelledby": "client-name" },
        h("h1", { id: "client-name" }, client.name),
        client.full_name ? h("p", { class: "muted" }, client.full_name) : null,
        h("div", { class: "row between" },
          h("span", { class: `badge cs-${client.status}` }, statusName(client.status)),
          h("div", { class: "actions" },
            h("button", { type: "button", class: "small", id: "client-edit",
              onclick: () => openClientForm(client, reload) }, t("clients.edit")),
            mergeButton(client, reload))),
        client.tags.length
          ? h("div", { class: "tags", id: "client-tags" }, client.tags.map((tg) => h("span", { class: "badge tag" }, tg)))
          : null,
        h("dl", { class: "props", id: "client-props" }, props(client)),
        client.notes ? h("p", { class: "notes" }, client.notes) : null,
        structure(client),
        client.kind === "company" ? contactsSection(client, reload) : null,
        consentSection(client.id),
        h("div", { class: "row between" }, h("h2", {}, t("clients.deals")),
          h("button", { type: "button", class: "small primary", id: "client-deal-new",
            onclick: () => openDealForm(null, { client }, (d) => { location.hash = `#/deals/${d.id}`; }) },
          t("deal.new"))),
        deals.items.length
          ? h("ul", { class: "plain", id: "client-deals" }, deals.items.map((d) => h("li", {},
            h("a", { href: `#/deals/${d.id}` }, d.title), " · ",
            h("span", { class: "badge" }, stageName(d)), " ", fmtMoney(d.amount, d.currency))))
          : h("p", { class: "muted" }, t("empty"))),
      conversationCard({ client_id: client.id }, client.emails, timeline.items, reload)));
}

/** The profile as <dt>/<dd> pairs, only the fields that have a value. */
function props(c) {
  const pair = (key, value) => (value === null || value === undefined || value === "" ? null
    : [h("dt", {}, t(key)), h("dd", {}, value)]);
  return [
    pair("clients.inn", c.inn),
    pair("cp.kpp", c.kpp),
    pair("cp.ogrn", c.ogrn),
    pair("clients.segment", (c.segments || []).map((g) => g.name).join(", ")),
    [h("dt", {}, t("clients.owner")), h("dd", {}, ownerName(c.owner_id))],
    pair("cp.website", c.website ? safeLink(c.website, c.website) : null),
    pair("cp.legalAddress", c.legal_address),
    pair("cp.actualAddress", c.actual_address),
    pair("cp.city", c.city),
    pair("cp.region", c.region),
    pair("cp.industry", c.industry),
    pair("cp.activity", c.activity),
    pair("cp.headcount", c.headcount === null ? null : String(c.headcount)),
    pair("cp.revenue", c.revenue === null ? null : fmtMoney(c.revenue)),
    pair("cp.birthday", c.birthday),
    pair("cp.source", c.source),
    pair("cp.lastContact", c.last_contact_at ? fmtDate(c.last_contact_at) : null),
    activeFields().concat(profile.fields.filter((f) => !f.active && c.custom[f.key] !== undefined))
      .map((f) => (c.custom[f.key] === undefined ? null
        : [h("dt", {}, fieldLabel(f)), h("dd", { dataset: { custom: f.key } }, customText(c.custom[f.key]))])),
    [h("dt", {}, t("clients.phones")),
      h("dd", {}, c.phones.map((p) => h("div", { class: "phone" }, p, " ",
        callButton({ number: p }, t("call.button")))))],
    [h("dt", {}, t("clients.emails")),
      h("dd", {}, c.emails.map((e) => h("div", {}, h("a", { href: `mailto:${e}` }, e))))],
  ];
}

/** The holding: the parent company and the branches. */
function structure(c) {
  if (!c.parent && !c.branches.length) return null;
  return h("div", { class: "structure", id: "client-structure" },
    c.parent ? h("p", {}, `${t("cp.parent")}: `,
      c.parent.name ? h("a", { href: `#/clients/${c.parent.id}` }, c.parent.name) : `#${c.parent.id}`) : null,
    c.branches.length ? [h("h3", {}, t("cp.branches")), h("ul", { class: "plain", id: "client-branches" },
      c.branches.map((b) => h("li", {}, h("a", { href: `#/clients/${b.id}` }, b.name),
        b.kpp ? h("span", { class: "muted small" }, ` · ${t("cp.kpp")} ${b.kpp}`) : null)))] : null);
}
