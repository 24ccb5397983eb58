// Clients: search by phone or name, and a client card with its deals and timeline.
import { api } from "./api.js";
import { attachBulk } from "./bulk.js";
import { callButton } from "./call.js";
import { openClientForm } from "./clientform.js";
import { openDealForm, stageName } from "./dealform.js";
import { clear, field, fmtMoney, h } from "./dom.js";
import { exportControls } from "./export.js";
import { t, tOr } from "./i18n.js";
import { segmentSelect } from "./segments.js";
import { mergeButton } from "./merge.js";
import { conversationCard } from "./timeline.js";
import { ownerName } from "./state.js";

let lastSearch = "";
let lastSegment = "";

/** One search box: the server's ``q`` finds a name fragment, an INN, a phone in any
 *  spelling, an email or a contact person's name. */
export function searchQuery(text) {
  const s = text.trim();
  return s ? { q: s } : {};
}

/** `q` (from the header's search box, #/clients?q=…) replaces the last search. */
export async function renderClients(main, q) {
  if (q !== undefined) lastSearch = q;
  const input = h("input", { name: "search", type: "search", value: lastSearch,
    placeholder: t("clients.search") });
  const body = h("div", { class: "table-wrap" });
  const segment = segmentSelect(lastSegment);
  segment.addEventListener("change", () => form.requestSubmit());
  const form = h("form", { class: "filters", role: "search" },
    field(t("clients.search"), input),
    field(t("clients.segment"), segment),
    h("button", { type: "submit", class: "primary" }, t("clients.find")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    lastSearch = input.value;
    lastSegment = segment.value;
    load(body, form);
  });
  const add = h("button", { type: "button", class: "primary", id: "client-new",
    onclick: () => openClientForm(null, (c) => { location.hash = `#/clients/${c.id}`; }) },
  t("clients.new"));
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("clients.title")), form, add,
    exportControls(() => searchQuery(lastSearch))), body);
  await load(body, form);
}

async function load(body, form) {
  clear(body, h("p", { class: "muted" }, t("loading")));
  let page;
  try {
    page = await api("GET", "/clients",
      { query: { ...searchQuery(lastSearch), segment: lastSegment, limit: 100 } });
  } catch (e) {
    const slot = form.querySelector(".field-error");
    slot.textContent = e.message;
    clear(body);
    return;
  }
  form.querySelector(".field-error").textContent = "";
  if (!page.items.length) {
    clear(body, h("p", { class: "muted empty" }, t("empty")));
    return;
  }
  clear(body, h("table", { class: "grid", id: "clients-table" },
    h("thead", {}, h("tr", {}, ["clients.name", "clients.status", "clients.phones",
      "clients.emails", "clients.owner", ""].map((k) => h("th", { scope: "col" }, k ? t(k) : "")))),
    h("tbody", {}, page.items.map((c) => h("tr", { dataset: { clientId: String(c.id) } },
      h("td", {}, h("a", { href: `#/clients/${c.id}` }, c.name),
        c.kind === "company" && c.inn ? h("div", { class: "muted small" }, `${t("clients.inn")} ${c.inn}`) : null),
      h("td", {}, h("span", { class: `badge cs-${c.status}` }, tOr(`cstatus.${c.status}`, c.status))),
      h("td", {}, c.phones.map((p) => h("div", {}, p))),
      h("td", {}, c.emails.map((e) => h("div", {}, e))),
      h("td", {}, ownerName(c.owner_id)),
      h("td", { class: "actions" }, c.phones.length ? callButton({ client_id: c.id }) : null))))));
  attachBulk(body, { query: searchQuery(lastSearch), total: page.total, reload: () => load(body, form) });
}

export async function renderClientCard(main, id) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  let client, deals, timeline;
  try {
    [client, deals, timeline] = await Promise.all([
      api("GET", `/clients/${id}`),
      api("GET", "/deals", { query: { client_id: id, status: "open", limit: 50 } }),
      api("GET", `/clients/${id}/timeline`, { query: { limit: 100 } }),
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
        h("div", { class: "row between" },
          h("span", { class: `badge cs-${client.status}` }, tOr(`cstatus.${client.status}`, client.status)),
          h("div", { class: "actions" },
            h("button", { type: "button", class: "small", id: "client-edit",
              onclick: () => openClientForm(client, reload) }, t("clients.edit")),
            mergeButton(client, reload))),
        h("dl", { class: "props" },
          client.inn ? [h("dt", {}, t("clients.inn")), h("dd", {}, client.inn)] : null,
          client.segment ? [h("dt", {}, t("clients.segment")), h("dd", {}, client.segment)] : null,
          h("dt", {}, t("clients.owner")), h("dd", {}, ownerName(client.owner_id)),
          h("dt", {}, t("clients.phones")),
          h("dd", {}, client.phones.map((p) => h("div", { class: "phone" }, p, " ",
            callButton({ number: p }, t("call.button"))))),
          h("dt", {}, t("clients.emails")),
          h("dd", {}, client.emails.map((e) => h("div", {}, h("a", { href: `mailto:${e}` }, e))))),
        client.notes ? h("p", { class: "notes" }, client.notes) : null,
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
