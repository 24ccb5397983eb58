// A lead's card: who wrote or called, why it went to its owner, its conversation, and an
// answer by email or by the messenger the person wrote from.
import { api } from "./api.js";
import { callButton } from "./call.js";
import { clear, fmtDate, h } from "./dom.js";
import { getLang, t, tOr } from "./i18n.js";
import { convert, reject } from "./leads.js";
import { ownerName } from "./state.js";
import { conversationCard } from "./timeline.js";

export async function renderLeadCard(main, id) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  let lead, timeline;
  try {
    [lead, timeline] = await Promise.all([
      api("GET", `/leads/${id}`),
      api("GET", `/leads/${id}/timeline`, { query: { limit: 100 } }),
    ]);
  } catch (e) {
    clear(main, h("a", { href: "#/leads" }, t("lead.back")),
      h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const reload = () => {
    if (location.hash === `#/leads/${id}`) renderLeadCard(main, id);
  };
  const open = lead.status === "new" || lead.status === "in_progress";
  const why = getLang() === "ru" && lead.assign_reason_ru ? lead.assign_reason_ru : lead.assign_reason;
  const title = lead.name || lead.company || lead.title || `#${lead.id}`;
  clear(main,
    h("a", { href: "#/leads", class: "back" }, t("lead.back")),
    h("div", { class: "client-card" },
      h("section", { class: "card", "aria-labelledby": "lead-name" },
        h("h1", { id: "lead-name" }, title),
        h("span", { class: `badge st-${lead.status}` }, tOr(`status.${lead.status}`, lead.status)),
        lead.needs_review ? [" ", h("span", { class: "badge warn" }, t("leads.review"))] : null,
        h("dl", { class: "props" },
          lead.company && lead.name ? [h("dt", {}, t("leads.company")), h("dd", {}, lead.company)] : null,
          h("dt", {}, t("leads.source")),
          h("dd", {}, tOr(`source.${lead.source}`, lead.source),
            lead.utm && lead.utm.utm_source ? ` · ${lead.utm.utm_source}` : ""),
          h("dt", {}, t("leads.created")), h("dd", {}, fmtDate(lead.created_at)),
          h("dt", {}, t("leads.owner")),
          h("dd", {}, lead.owner_id ? ownerName(lead.owner_id)
            : (lead.queue ? `${t("lead.queue")}: ${lead.queue}` : t("none"))),
          why || lead.rule_id ? [h("dt", {}, t("lead.why")),
            h("dd", { class: "why" }, why || "", lead.rule_id
              ? h("div", { class: "muted small" }, lead.rule_id) : null)] : null,
          lead.priority ? [h("dt", {}, t("lead.priority")), h("dd", {}, lead.priority)] : null,
          lead.tags && lead.tags.length ? [h("dt", {}, t("lead.tags")), h("dd", {}, lead.tags.join(", "))] : null,
          h("dt", {}, t("clients.phones")),
          h("dd", {}, lead.phones.map((p) => h("div", { class: "phone" }, p, " ",
            callButton({ number: p }, t("call.button"))))),
          h("dt", {}, t("clients.emails")),
          h("dd", {}, lead.emails.map((e) => h("div", {}, e))),
          lead.client_id ? [h("dt", {}, t("lead.client")),
            h("dd", {}, h("a", { href: `#/clients/${lead.client_id}` }, t("open")))] : null,
          lead.deal_id ? [h("dt", {}, t("deal.deal")),
            h("dd", {}, h("a", { href: `#/deals/${lead.deal_id}`, id: "lead-deal" }, t("open")))] : null),
        open ? h("div", { class: "row" },
          h("button", { type: "button", class: "small primary",
            onclick: () => convert(lead, reload) }, t("leads.convert")),
          h("button", { type: "button", class: "small danger",
            onclick: () => reject(lead, reload) }, t("leads.reject"))) : null),
      conversationCard({ lead_id: lead.id }, lead.emails, timeline.items, reload)));
}
