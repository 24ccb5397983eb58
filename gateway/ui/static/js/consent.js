// Email consent on the client card: each address of the client and of its contact
// persons, whether campaigns may go to it, who changed that and when; a manager records
// consent given or withdrawn (an address that unsubscribed itself needs a note).
import { api } from "./api.js";
import { clear, field, fmtDate, h, select, toast } from "./dom.js";
import { addStrings, t, tOr } from "./i18n.js";
import { openForm } from "./modal.js";

addStrings({
  ru: {
    "consent.title": "Согласие на рассылки", "consent.change": "Отметить",
    "consent.changeLabel": "Отметить согласие: {email}",
    "consent.changeFor": "Согласие: {email}", "consent.state": "Состояние",
    "consent.note": "Заметка (откуда известно)", "consent.saved": "Согласие сохранено",
    "consent.history": "История ({n})", "consent.more": "Показаны последние изменения",
    "consent.none": "У клиента нет адресов почты", "consent.by": "кто: {name}",
    "consent.campaign": "рассылка №{id}", "consent.blocked": "рассылки не отправляются",
    "consent.noteNeeded": "Адрес отписался сам или не существует: чтобы снова разрешить рассылки, напишите в заметке, почему.",
    "consent.s.unknown": "не указано", "consent.s.granted": "согласен",
    "consent.s.withdrawn": "отозвал согласие", "consent.s.unsubscribed": "отписался",
    "consent.s.bounced": "адрес не существует", "consent.s.complained": "пожаловался на спам",
    "consent.src.manager": "менеджер", "consent.src.import": "импорт",
    "consent.src.one_click": "кнопка «Отписаться» в почте", "consent.src.unsubscribe_page": "ссылка в письме",
    "consent.src.bounce": "недоставка", "consent.src.arf": "жалоба почтового сервиса",
    "consent.failed": "Не удалось загрузить согласия: {error}",
  },
  en: {
    "consent.title": "Email consent", "consent.change": "Record",
    "consent.changeLabel": "Record consent: {email}",
    "consent.changeFor": "Consent: {email}", "consent.state": "State",
    "consent.note": "Note (how we know)", "consent.saved": "Consent saved",
    "consent.history": "History ({n})", "consent.more": "The latest changes are shown",
    "consent.none": "The client has no email address", "consent.by": "by {name}",
    "consent.campaign": "campaign #{id}", "consent.blocked": "no campaigns are sent",
    "consent.noteNeeded": "The address unsubscribed itself or does not exist: to allow campaigns again, say why in the note.",
    "consent.s.unknown": "not recorded", "consent.s.granted": "agreed",
    "consent.s.withdrawn": "withdrew consent", "consent.s.unsubscribed": "unsubscribed",
    "consent.s.bounced": "address does not exist", "consent.s.complained": "complained of spam",
    "consent.src.manager": "manager", "consent.src.import": "import",
    "consent.src.one_click": "the mail program's Unsubscribe button", "consent.src.unsubscribe_page": "the link in an email",
    "consent.src.bounce": "bounce", "consent.src.arf": "a mail provider's complaint report",
    "consent.failed": "Could not load the consent: {error}",
  },
});

const OWN = ["unsubscribed", "bounced", "complained"];
const stateName = (s) => tOr(`consent.s.${s}`, s);
const sourceName = (s) => tOr(`consent.src.${s}`, s);

/** The card section of client `clientId`; it loads itself. */
export function consentSection(clientId) {
  const body = h("div", { class: "consent-body" }, h("p", { class: "muted" }, t("loading")));
  const section = h("section", { class: "consent", id: "consent", "aria-labelledby": "consent-title" },
    h("h2", { id: "consent-title" }, t("consent.title")), body);
  const load = async () => {
    try {
      const data = await api("GET", `/clients/${clientId}/consent`);
      clear(body, data.items.length
        ? h("ul", { class: "plain consent-list" }, data.items.map((item) => row(clientId, item, load)))
        : h("p", { class: "muted" }, t("consent.none")));
    } catch (e) {
      clear(body, h("p", { class: "field-error", role: "alert" }, t("consent.failed", { error: e.message })));
    }
  };
  load();
  return section;
}

function row(clientId, item, reload) {
  return h("li", { class: "consent-item", dataset: { email: item.email, state: item.state } },
    h("div", { class: "row between" },
      h("div", {},
        h("span", { class: "consent-email" }, item.email),
        item.contact_name ? h("span", { class: "muted" }, ` · ${item.contact_name}`) : null, " ",
        h("span", { class: `badge consent-${item.state}` }, stateName(item.state)),
        item.suppressed ? h("span", { class: "muted small" }, ` · ${t("consent.blocked")}`) : null,
        item.updated_at ? h("span", { class: "muted small" }, ` · ${fmtDate(item.updated_at)}`) : null),
      h("button", { type: "button", class: "small consent-change", "aria-label": t("consent.changeLabel", { email: item.email }),
        onclick: () => openConsentForm(clientId, item, reload) }, t("consent.change"))),
    item.history.length ? h("details", { class: "consent-history" },
      h("summary", {}, t("consent.history", { n: item.history.length + (item.history_more ? "+" : "") })),
      h("ul", { class: "plain small" }, item.history.map((e) => h("li", {},
        `${fmtDate(e.at)} · `,
        h("strong", {}, stateName(e.state)),
        ` · ${sourceName(e.source)}`,
        e.user_name ? ` · ${t("consent.by", { name: e.user_name })}` : "",
        e.campaign_id ? ` · ${t("consent.campaign", { id: e.campaign_id })}` : "",
        e.note ? h("div", { class: "muted" }, e.note) : null))),
      item.history_more ? h("p", { class: "muted small" }, t("consent.more")) : null) : null);
}

function openConsentForm(clientId, item, reload) {
  const current = item.state === "withdrawn" ? "withdrawn" : "granted";
  const form = openForm(t("consent.changeFor", { email: item.email }), [
    OWN.includes(item.state) ? h("p", { class: "muted small" }, t("consent.noteNeeded")) : null,
    field(t("consent.state"), select("state", [
      ["granted", stateName("granted")], ["withdrawn", stateName("withdrawn")]], current)),
    field(t("consent.note"), h("textarea", { name: "note", rows: 2, maxlength: 500 })),
  ], async (v) => {
    const note = (v.note || "").trim();
    await api("PUT", `/clients/${clientId}/consent`,
      { body: { email: item.email, state: v.state, note: note || null } });
    toast(t("consent.saved"), "ok");
    await reload();
  });
  form.id = "consent-form";
  return form;
}
