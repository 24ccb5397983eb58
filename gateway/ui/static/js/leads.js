// Leads: newest first, filters by status and source; reject with a reason; convert.
import { api } from "./api.js";
import { callButton } from "./call.js";
import { decimal, loadPipelines, nameOf } from "./dealform.js";
import { clear, field, fmtDate, h, select, toast } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { openForm } from "./modal.js";
import { ownerName } from "./state.js";

const STATUSES = ["new", "in_progress", "converted", "rejected"];
const SOURCES = ["webform", "call", "email", "telegram", "vk", "manual"];
const filters = { status: "", source: "" };

export async function renderLeads(main) {
  const statusSel = select(
    "status",
    [["", t("leads.all")], ...STATUSES.map((s) => [s, t(`status.${s}`)])],
    filters.status,
  );
  const sourceSel = select(
    "source",
    [["", t("leads.all")], ...SOURCES.map((s) => [s, t(`source.${s}`)])],
    filters.source,
  );
  const body = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, t("loading")));
  const total = h("span", { class: "muted", id: "leads-total" });
  const reload = () => loadInto(body, total);
  for (const sel of [statusSel, sourceSel]) {
    sel.addEventListener("change", () => {
      filters[sel.name] = sel.value;
      reload();
    });
  }
  clear(
    main,
    h("div", { class: "view-head" },
      h("h1", {}, t("leads.title")),
      h("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
        field(t("leads.status"), statusSel),
        field(t("leads.source"), sourceSel)),
      total),
    body,
  );
  await reload();
}

async function loadInto(body, total) {
  let page;
  try {
    page = await api("GET", "/leads", { query: { ...filters, limit: 100 } });
  } catch (e) {
    clear(body, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  total.textContent = t("leads.total", { n: page.total });
  if (!page.items.length) {
    clear(body, h("p", { class: "muted empty" }, t("empty")));
    return;
  }
  const rows = page.items.map((lead) => leadRow(lead, () => loadInto(body, total)));
  clear(
    body,
    h("table", { class: "grid", id: "leads-table" },
      h("thead", {}, h("tr", {},
        ["leads.name", "leads.status", "leads.source", "leads.contacts", "leads.owner",
          "leads.created", "leads.actions"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, rows)),
  );
}

function leadRow(lead, reload) {
  const open = lead.status === "new" || lead.status === "in_progress";
  const title = lead.name || lead.company || lead.title || `#${lead.id}`;
  return h("tr", { dataset: { leadId: String(lead.id) }, class: `lead status-${lead.status}` },
    h("td", {},
      h("a", { href: `#/leads/${lead.id}`, class: "lead-link" }, h("strong", {}, title)),
      lead.company && lead.name ? h("div", { class: "muted" }, lead.company) : null,
      lead.title && lead.title !== title ? h("div", { class: "muted small" }, lead.title) : null,
      lead.needs_review ? h("span", { class: "badge warn" }, t("leads.review")) : null),
    h("td", {}, h("span", { class: `badge st-${lead.status}` }, tOr(`status.${lead.status}`, lead.status)),
      lead.loss_reason ? h("div", { class: "muted small" }, lead.loss_reason) : null),
    h("td", {}, tOr(`source.${lead.source}`, lead.source),
      lead.utm && lead.utm.utm_source ? h("div", { class: "muted small" }, lead.utm.utm_source) : null),
    h("td", {}, [...lead.phones, ...lead.emails].map((c) => h("div", {}, c))),
    h("td", {}, ownerName(lead.owner_id)),
    h("td", { class: "nowrap" }, fmtDate(lead.created_at)),
    h("td", { class: "actions" },
      lead.phones.length ? callButton({ lead_id: lead.id }) : null,
      open ? h("button", { type: "button", class: "small primary",
        onclick: () => convert(lead, reload) }, t("leads.convert")) : null,
      open ? h("button", { type: "button", class: "small danger",
        onclick: () => reject(lead, reload) }, t("leads.reject")) : null,
      lead.client_id ? h("a", { href: `#/clients/${lead.client_id}`, class: "small" }, t("open")) : null),
  );
}

export async function convert(lead, reload) {
  const kind = select("kind", [["person", t("leads.person")], ["company", t("leads.company")]],
    lead.company ? "company" : "person");
  const name = h("input", { name: "name", value: lead.company || lead.name || "", required: true });
  const deal = h("input", { name: "deal_title", value: lead.title || "" });
  const amount = h("input", { name: "amount", inputmode: "decimal" });
  const pipelines = await loadPipelines().catch(() => []);
  const byDefault = pipelines.find((p) => p.is_default) || pipelines[0];
  const pipeline = pipelines.length > 1
    ? select("pipeline_id", pipelines.map((p) => [String(p.id), nameOf(p)]), String(byDefault.id))
    : null;
  openForm(t("leads.convertTitle"),
    [field(t("leads.kind"), kind), field(t("leads.clientName"), name),
      field(t("leads.dealTitle"), deal),
      pipeline ? field(t("deal.pipeline"), pipeline) : null,
      field(t("leads.amount"), amount)],
    async (v) => {
      const body = { kind: v.kind, name: v.name };
      if (v.deal_title) body.deal_title = v.deal_title;
      if (v.amount) body.amount = decimal(v.amount);
      if (v.pipeline_id) body.pipeline_id = Number(v.pipeline_id);
      const out = await api("POST", `/leads/${lead.id}/convert`, { body });
      toast(t("leads.converted", { name: out.client.name }), "ok");
      await reload();
    },
    t("leads.convert"));
}

export function reject(lead, reload) {
  const reason = h("input", { name: "reason", required: true, maxlength: 300 });
  openForm(`${t("leads.reject")}: ${lead.name || lead.title || lead.id}`,
    [field(t("leads.reason"), reason)],
    async (v) => {
      await api("POST", `/leads/${lead.id}/reject`, { body: { reason: v.reason } });
      toast(t("leads.rejected"), "ok");
      await reload();
    },
    t("leads.reject"));
}
