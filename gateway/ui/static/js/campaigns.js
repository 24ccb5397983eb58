// Campaigns (mass email to segments): the list with status and counts; a campaign's page:
// the editor of a draft (name, audience: segments, exclusions, which addresses; subject,
// HTML and text templates with their variables), the audience count, a preview for a
// chosen recipient (the HTML in a sandboxed frame that may run nothing), a test send to
// yourself, send now or at a time; while it sends, a progress bar with pause / resume /
// cancel; then its results: counts, the recipients (paged, by status; `unknown` ones
// highlighted for a person to decide) and the XLSX of every recipient.
import { api, ApiError } from "./api.js";
import { clear, clearErrors, field, fmtDate, h, htmlFrame, select, showError, toast } from "./dom.js";
import { addStrings, getLang, t, tOr } from "./i18n.js";
import { state } from "./state.js";

addStrings({
  ru: {
    "nav.campaigns": "Рассылки",
    "cmp.title": "Рассылки", "cmp.new": "Новая рассылка", "cmp.back": "← Все рассылки",
    "cmp.name": "Название", "cmp.status": "Статус", "cmp.created": "Создана",
    "cmp.recipients": "Получателей", "cmp.sent": "Отправлено", "cmp.sentAll": "отправлено (принято сервером)", "cmp.replied": "Ответили",
    "cmp.problems": "Ошибки и возвраты",
    "cmp.audience": "Аудитория", "cmp.segments": "Сегменты",
    "cmp.segmentsHint": "Ctrl или Shift — выбрать несколько",
    "cmp.exclude": "Исключить сегменты", "cmp.excludeDays": "Исключить, с кем был контакт за последние N дней",
    "cmp.addresses": "Какие адреса", "cmp.addr.primary": "основной адрес клиента",
    "cmp.addr.all": "все адреса клиента", "cmp.addr.contacts": "контактные лица",
    "cmp.positions": "Должности контактных лиц", "cmp.positionsHint": "через запятую; пусто — все",
    "cmp.templates": "Письмо", "cmp.subject": "Тема", "cmp.html": "HTML", "cmp.text": "Текст",
    "cmp.vars": "Переменные шаблона",
    "cmp.varsHint": "Jinja2: {{ client.name }}, {% if contact %}…{% endif %}. Значения экранируются.",
    "cmp.sendAt": "Отправить в (пусто — сразу после запуска)",
    "cmp.save": "Сохранить", "cmp.saved": "Рассылка сохранена",
    "cmp.count": "Писем: {n} (клиентов: {clients}; из них отписались или недоступны: {suppressed})", "cmp.countNone": "Сохраните, чтобы посчитать аудиторию",
    "cmp.countEmpty": "Аудитория пуста: некому отправлять",
    "cmp.preview": "Предпросмотр", "cmp.previewFor": "Клиент для предпросмотра",
    "cmp.previewHint": "Название, ИНН или телефон", "cmp.find": "Найти",
    "cmp.previewTo": "Кому: {email}", "cmp.previewSubject": "Тема: {subject}",
    "cmp.previewFrame": "Предпросмотр письма", "cmp.noMatches": "Никого не нашли",
    "cmp.test": "Отправить тест себе", "cmp.testSent": "Тестовое письмо отправлено на {email}",
    "cmp.start": "Запустить", "cmp.startAt": "Запланировать",
    "cmp.confirmStart": "Отправить рассылку «{name}»? Получателей: {n}.",
    "cmp.pause": "Пауза", "cmp.resume": "Продолжить", "cmp.cancel": "Отменить рассылку",
    "cmp.confirmCancel": "Отменить рассылку «{name}»? Неотправленные письма не уйдут.",
    "cmp.progress": "Обработано {done} из {total}", "cmp.scheduledAt": "Запланирована на {at}",
    "cmp.results": "Результаты", "cmp.list": "Получатели", "cmp.filter": "Статус получателя",
    "cmp.allStatuses": "все", "cmp.email": "Адрес", "cmp.client": "Клиент", "cmp.error": "Ошибка",
    "cmp.when": "Когда", "cmp.xlsx": "Скачать XLSX",
    "cmp.unknownNote": "Статус «не известно»: письмо могло уйти, а могло и нет (сбой во время отправки). Проверьте вручную — повторно такие письма сами не отправляются.",
    "cmp.more": "Показать ещё", "cmp.shown": "Показано {n} из {total}",
    "cmp.readonly": "Рассылки запускают администраторы и руководители",
    "cmp.apiAudience": "Также в аудитории (задано через API): фильтр списка клиентов — {filter}, выбранных клиентов — {clients}, исключённых клиентов — {excluded}",
    "cmp.yes": "да", "cmp.no": "нет",
    "cst.draft": "черновик", "cst.scheduled": "запланирована", "cst.sending": "отправляется",
    "cst.paused": "на паузе", "cst.cancelled": "отменена", "cst.done": "завершена",
    "rst.pending": "в очереди", "rst.sending": "отправляется", "rst.sent": "отправлено",
    "rst.failed": "ошибка", "rst.bounced": "возврат", "rst.unsubscribed": "отписался",
    "rst.replied": "ответил", "rst.suppressed": "исключён (отписка/возврат)",
    "rst.unknown": "не известно",
  },
  en: {
    "nav.campaigns": "Campaigns",
    "cmp.title": "Campaigns", "cmp.new": "New campaign", "cmp.back": "← All campaigns",
    "cmp.name": "Name", "cmp.status": "Status", "cmp.created": "Created",
    "cmp.recipients": "Recipients", "cmp.sent": "Sent", "cmp.sentAll": "sent (accepted by the server)", "cmp.replied": "Replied",
    "cmp.problems": "Failed and bounced",
    "cmp.audience": "Audience", "cmp.segments": "Segments",
    "cmp.segmentsHint": "Ctrl or Shift to pick several",
    "cmp.exclude": "Exclude segments", "cmp.excludeDays": "Exclude clients contacted in the last N days",
    "cmp.addresses": "Which addresses", "cmp.addr.primary": "the client's primary address",
    "cmp.addr.all": "every address of the client", "cmp.addr.contacts": "contact persons",
    "cmp.positions": "Positions of contact persons", "cmp.positionsHint": "comma-separated; empty: all",
    "cmp.templates": "Message", "cmp.subject": "Subject", "cmp.html": "HTML", "cmp.text": "Text",
    "cmp.vars": "Template variables",
    "cmp.varsHint": "Jinja2: {{ client.name }}, {% if contact %}…{% endif %}. Values are escaped.",
    "cmp.sendAt": "Send at (empty: as soon as started)",
    "cmp.save": "Save", "cmp.saved": "Campaign saved",
    "cmp.count": "Messages: {n} (clients: {clients}; unsubscribed or unreachable among them: {suppressed})", "cmp.countNone": "Save to count the audience",
    "cmp.countEmpty": "The audience is empty: nobody to send to",
    "cmp.preview": "Preview", "cmp.previewFor": "Client to preview for",
    "cmp.previewHint": "Name, INN or phone", "cmp.find": "Search",
    "cmp.previewTo": "To: {email}", "cmp.previewSubject": "Subject: {subject}",
    "cmp.previewFrame": "Message preview", "cmp.noMatches": "Nobody found",
    "cmp.test": "Send a test to me", "cmp.testSent": "A test message went to {email}",
    "cmp.start": "Start", "cmp.startAt": "Schedule",
    "cmp.confirmStart": "Send campaign “{name}”? Recipients: {n}.",
    "cmp.pause": "Pause", "cmp.resume": "Resume", "cmp.cancel": "Cancel the campaign",
    "cmp.confirmCancel": "Cancel campaign “{name}”? Messages not yet sent will not go.",
    "cmp.progress": "Processed {done} of {total}", "cmp.scheduledAt": "Scheduled for {at}",
    "cmp.results": "Results", "cmp.list": "Recipients", "cmp.filter": "Recipient status",
    "cmp.allStatuses": "all", "cmp.email": "Address", "cmp.client": "Client", "cmp.error": "Error",
    "cmp.when": "When", "cmp.xlsx": "Download XLSX",
    "cmp.unknownNote": "Status “unknown”: the message may or may not have gone (a crash while sending). Check by hand: such messages are never resent on their own.",
    "cmp.more": "Show more", "cmp.shown": "Shown {n} of {total}",
    "cmp.readonly": "Campaigns are started by admins and supervisors",
    "cmp.apiAudience": "Also in the audience (set through the API): a clients list filter: {filter}, chosen clients: {clients}, excluded clients: {excluded}",
    "cmp.yes": "yes", "cmp.no": "no",
    "cst.draft": "draft", "cst.scheduled": "scheduled", "cst.sending": "sending",
    "cst.paused": "paused", "cst.cancelled": "cancelled", "cst.done": "done",
    "rst.pending": "queued", "rst.sending": "sending", "rst.sent": "sent",
    "rst.failed": "failed", "rst.bounced": "bounced", "rst.unsubscribed": "unsubscribed",
    "rst.replied": "replied", "rst.suppressed": "suppressed (unsubscribed/bounced)",
    "rst.unknown": "unknown",
  },
});

const RECIPIENT_STATUSES = [
  "pending", "sending", "sent", "failed", "bounced", "unsubscribed", "replied", "suppressed", "unknown",
];
// What counts as "handled" for the progress bar: everything but the queue and the wire.
const SETTLED = RECIPIENT_STATUSES.filter((s) => !["pending", "sending"].includes(s));
const LIVE_STATUSES = new Set(["scheduled", "sending"]);
const PAGE = 50;
const POLL_MS = 2000;
const VARIABLES = [
  ["client.name", "client.kind", "client.inn", "client.city", "client.industry", "client.custom.<ключ>"],
  ["contact.name", "contact.position"],
  ["owner.name", "owner.email", "owner.phone", "owner.signature"],
  ["unsubscribe_url"],
];

let poller = null;

// Managers send (to their own clients) only when an admin allows it: /campaign-access.
const mayRun = () => Boolean(state.me && (["admin", "supervisor"].includes(state.me.role)
  || (state.campaigns && state.campaigns.may_send)));
const statusBadge = (st) => h("span", { class: `badge cst-${st}`, dataset: { status: st } }, tOr(`cst.${st}`, st));
const counts = (c) => c.counts || {};
const total = (c) => Object.values(counts(c)).reduce((a, b) => a + Number(b || 0), 0);
const settled = (c) => SETTLED.reduce((a, s) => a + Number(counts(c)[s] || 0), 0);

/** A manager's permission, asked once (main.js asks at sign-in too). */
async function access() {
  if (!state.me || state.me.role !== "manager" || state.campaigns) return;
  try {
    state.campaigns = await api("GET", "/campaign-access");
  } catch {
    /* the buttons stay hidden; the server decides anyway */
  }
}

function stopPolling() {
  if (poller) clearTimeout(poller);
  poller = null;
}

export async function renderCampaigns(main) {
  stopPolling();
  clear(main, h("p", { class: "muted" }, t("loading")));
  await access();
  const list = h("div", { id: "campaigns-list" });
  const add = mayRun()
    ? h("a", { class: "button primary", href: "#/campaigns/new", id: "campaign-new" }, t("cmp.new"))
    : null;
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("cmp.title")), add), list);
  await loadList(list, 0);
}

async function loadList(box, offset) {
  let page;
  try {
    page = await api("GET", "/campaigns", { query: { limit: PAGE, offset } });
  } catch (e) {
    clear(box, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const rows = page.items.map((c) => {
    const n = counts(c);
    return h("tr", { dataset: { campaignId: String(c.id), status: c.status } },
      h("td", {}, h("a", { href: `#/campaigns/${c.id}` }, c.name)),
      h("td", {}, statusBadge(c.status)),
      h("td", { class: "num" }, String(total(c))),
      h("td", { class: "num" }, String(n.sent || 0)),
      h("td", { class: "num" }, String(n.replied || 0)),
      h("td", { class: "num" }, String((n.failed || 0) + (n.bounced || 0))),
      h("td", {}, fmtDate(c.created_at)));
  });
  const pager = page.total > offset + page.items.length || offset > 0
    ? h("div", { class: "row pager" },
      offset > 0 ? h("button", { type: "button", onclick: () => loadList(box, Math.max(0, offset - PAGE)) }, "←") : null,
      h("span", { class: "muted" }, `${offset + 1}–${offset + page.items.length} / ${page.total}`),
      page.total > offset + page.items.length
        ? h("button", { type: "button", onclick: () => loadList(box, offset + PAGE) }, "→") : null)
    : null;
  clear(box, rows.length
    ? h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "campaigns-table" },
      h("thead", {}, h("tr", {}, ["cmp.name", "cmp.status", "cmp.recipients", "cmp.sent",
        "cmp.replied", "cmp.problems", "cmp.created"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, rows)))
    : h("p", { class: "muted empty" }, t("empty")), pager);
}

export async function renderCampaign(main, id) {
  stopPolling();
  clear(main, h("p", { class: "muted" }, t("loading")));
  let campaign = null;
  let segments;
  await access();
  try {
    [segments, campaign] = await Promise.all([
      api("GET", "/segments").then((p) => p.items),
      id === "new" ? Promise.resolve(null) : api("GET", `/campaigns/${id}`),
    ]);
  } catch (e) {
    clear(main, h("a", { href: "#/campaigns" }, t("cmp.back")),
      h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const head = h("div", { class: "view-head" },
    h("h1", { id: "campaign-title" }, campaign ? campaign.name : t("cmp.new")),
    campaign ? statusBadge(campaign.status) : null);
  const status = h("div", { id: "campaign-status" });
  const results = h("div", { id: "campaign-results" });
  const editor = !campaign || campaign.status === "draft" ? new Editor(campaign, segments) : null;
  clear(main, h("a", { href: "#/campaigns" }, t("cmp.back")), head, status,
    editor ? editor.el : null, results);
  if (campaign) {
    drawStatus(status, campaign, head);
    if (campaign.status !== "draft") new Results(results, campaign).load();
    if (LIVE_STATUSES.has(campaign.status)) poll(main, campaign.id, status, head, results);
  }
  if (editor) editor.refreshCount();
}

/** Every 2 s while the campaign is scheduled or sending: its counts and status. */
function poll(main, id, statusBox, head, resultsBox) {
  stopPolling();
  const tick = async () => {
    if (!main.contains(statusBox)) return; // the page was left
    let c;
    try {
      c = await api("GET", `/campaigns/${id}`);
    } catch {
      poller = setTimeout(tick, POLL_MS * 2);
      return;
    }
    if (!main.contains(statusBox)) return;
    drawStatus(statusBox, c, head);
    if (LIVE_STATUSES.has(c.status)) {
      poller = setTimeout(tick, POLL_MS);
    } else {
      poller = null;
      new Results(resultsBox, c).load();
    }
  };
  poller = setTimeout(tick, POLL_MS);
}

function action(label, verb, c, confirmText, extra = {}) {
  return h("button", {
    type: "button", dataset: { action: verb }, ...extra,
    onclick: async (ev) => {
      if (confirmText && !window.confirm(confirmText)) return;
      ev.currentTarget.disabled = true;
      try {
        await api("POST", `/campaigns/${c.id}/${verb}`, { body: {} });
        await renderCampaign(document.getElementById("main"), String(c.id));
      } catch (e) {
        toast(e.message, "error");
        ev.target.disabled = false;
      }
    },
  }, label);
}

function drawStatus(box, c, head) {
  const badge = head.querySelector(".badge");
  if (badge) badge.replaceWith(statusBadge(c.status));
  if (c.status === "draft") {
    clear(box);
    return;
  }
  const all = total(c);
  const done = settled(c);
  const controls = [];
  if (mayRun()) {
    if (c.status === "sending" || c.status === "scheduled") controls.push(action(t("cmp.pause"), "pause", c));
    if (c.status === "paused") controls.push(action(t("cmp.resume"), "resume", c, null, { class: "primary" }));
    if (["scheduled", "sending", "paused"].includes(c.status)) {
      controls.push(action(t("cmp.cancel"), "cancel", c, t("cmp.confirmCancel", { name: c.name }), { class: "danger" }));
    }
  }
  clear(box, h("section", { class: "card campaign-progress" },
    c.status === "scheduled" && c.send_at
      ? h("p", {}, t("cmp.scheduledAt", { at: fmtDate(c.send_at) })) : null,
    h("progress", { id: "campaign-progress", max: String(Math.max(all, 1)), value: String(done),
      "aria-label": t("cmp.progress", { done, total: all }) }),
    h("p", { id: "campaign-progress-text", "aria-live": "polite" }, t("cmp.progress", { done, total: all })),
    controls.length ? h("div", { class: "row" }, controls) : null));
}

const splitList = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

class Editor {
  constructor(campaign, segments) {
    this.campaign = campaign;
    const c = campaign || {};
    const options = (chosen) => segments.map((s) => h("option", {
      value: String(s.id), selected: (chosen || []).includes(s.id),
    }, `${s.name} (${s.client_count})`));
    const multi = (name, chosen) => h("select", { name, multiple: true, size: Math.min(6, Math.max(3, segments.length)) },
      options(chosen));
    this.f = {
      name: h("input", { name: "name", value: c.name || "", maxlength: 200, required: true }),
      segment_ids: multi("segment_ids", c.segment_ids),
      exclude_segment_ids: multi("exclude_segment_ids", c.exclude_segment_ids),
      exclude_contacted_days: h("input", {
        name: "exclude_contacted_days", type: "number", min: "1", max: "3650", step: "1",
        value: c.exclude_contacted_days ?? "",
      }),
      addresses: select("addresses", ["primary", "all", "contacts"].map((a) => [a, t(`cmp.addr.${a}`)]),
        c.addresses || "primary"),
      positions: h("input", { name: "positions", value: (c.positions || []).join(", "),
        placeholder: t("cmp.positionsHint") }),
      subject: h("input", { name: "subject", value: c.subject || "", maxlength: 500, required: true }),
      html: h("textarea", { name: "html", rows: 10, class: "code" }, c.html || ""),
      text: h("textarea", { name: "text", rows: 6, class: "code" }, c.text || ""),
      send_at: h("input", { name: "send_at", type: "datetime-local", value: localInput(c.send_at) }),
    };
    const positionsField = field(t("cmp.positions"), this.f.positions);
    const showPositions = () => { positionsField.hidden = this.f.addresses.value !== "contacts"; };
    this.f.addresses.addEventListener("change", showPositions);
    showPositions();
    this.count = h("p", { class: "seg-live", id: "campaign-audience", "aria-live": "polite" },
      campaign ? t("loading") : t("cmp.countNone"));
    this.preview = h("div", { id: "campaign-preview" });
    const saveBtn = h("button", { type: "submit", class: "primary", id: "campaign-save" }, t("cmp.save"));
    this.form = h("form", { class: "card campaign-form", novalidate: true, id: "campaign-form",
      onsubmit: (e) => { e.preventDefault(); this.save(); } },
    field(t("cmp.name"), this.f.name),
    h("fieldset", {}, h("legend", {}, t("cmp.audience")),
      field(t("cmp.segments"), this.f.segment_ids),
      h("p", { class: "muted small" }, t("cmp.segmentsHint")),
      field(t("cmp.exclude"), this.f.exclude_segment_ids),
      field(t("cmp.excludeDays"), this.f.exclude_contacted_days),
      field(t("cmp.addresses"), this.f.addresses), positionsField,
      c.filter || (c.client_ids && c.client_ids.length) || (c.exclude_client_ids && c.exclude_client_ids.length)
        ? h("p", { class: "muted small", id: "campaign-api-audience" }, t("cmp.apiAudience", {
          filter: c.filter ? t("cmp.yes") : t("cmp.no"),
          clients: (c.client_ids || []).length, excluded: (c.exclude_client_ids || []).length,
        }))
        : null,
      this.count),
    h("fieldset", {}, h("legend", {}, t("cmp.templates")),
      field(t("cmp.subject"), this.f.subject), field(t("cmp.html"), this.f.html),
      field(t("cmp.text"), this.f.text),
      h("details", { class: "campaign-vars" }, h("summary", {}, t("cmp.vars")),
        h("p", { class: "muted small" }, t("cmp.varsHint")),
        h("ul", {}, VARIABLES.map((group) => h("li", {}, group.map((v, i) => [i ? ", " : "", h("code", {}, `{{ ${v} }}`)]))))),
      field(t("cmp.sendAt"), this.f.send_at)),
    h("p", { class: "form-error field-error", role: "alert" }),
    h("div", { class: "row end" }, saveBtn));
    this.el = h("div", { class: "campaign-editor" }, this.form, campaign ? this.actions() : null,
      campaign ? this.previewBox() : null);
    const recount = () => this.refreshCount();
    for (const k of ["segment_ids", "exclude_segment_ids", "exclude_contacted_days", "addresses", "positions"]) {
      this.f[k].addEventListener("change", recount);
    }
    this.dirtyAudience = false;
    this.seq = 0;
  }

  body() {
    const ids = (sel) => [...sel.selectedOptions].map((o) => Number(o.value));
    const days = this.f.exclude_contacted_days.value.trim();
    const out = {
      name: this.f.name.value.trim(),
      segment_ids: ids(this.f.segment_ids),
      exclude_segment_ids: ids(this.f.exclude_segment_ids),
      exclude_contacted_days: days === "" ? null : Number(days),
      addresses: this.f.addresses.value,
      subject: this.f.subject.value,
      html: this.f.html.value,
      text: this.f.text.value,
      send_at: this.f.send_at.value ? new Date(this.f.send_at.value).toISOString() : null,
    };
    if (out.addresses === "contacts") out.positions = splitList(this.f.positions.value);
    return out;
  }

  /** Save the draft (a new one: create it and open its page); `quiet`: no toast. */
  async save(quiet = false) {
    clearErrors(this.form);
    const body = this.body();
    try {
      const saved = this.campaign
        ? await api("PATCH", `/campaigns/${this.campaign.id}`, { body })
        : await api("POST", "/campaigns", { body });
      if (!quiet) toast(t("cmp.saved"));
      if (this.campaign) {
        this.campaign = saved;
        await this.refreshCount();
      } else {
        location.hash = `#/campaigns/${saved.id}`;
      }
      return saved;
    } catch (e) {
      showError(this.form, e);
      return null;
    }
  }

  /** The audience of the saved campaign; a change not saved yet is counted once saved. */
  async refreshCount() {
    if (!this.campaign) return;
    const mine = ++this.seq;
    const changed = JSON.stringify(audienceOf(this.body())) !== JSON.stringify(audienceOf(this.campaign));
    if (changed) {
      // The count follows the form: the audience part is saved (a draft) and counted.
      try {
        const body = audienceOf(this.body());
        this.campaign = { ...this.campaign, ...(await api("PATCH", `/campaigns/${this.campaign.id}`, { body })) };
      } catch (e) {
        if (mine === this.seq) {
          clearErrors(this.form);
          showError(this.form, e);
        }
        return;
      }
    }
    try {
      const r = await api("GET", `/campaigns/${this.campaign.id}/audience`);
      if (mine !== this.seq) return;
      const n = Number(r.addresses || 0);
      this.count.textContent = n
        ? t("cmp.count", { n: n.toLocaleString(), clients: Number(r.clients || 0).toLocaleString(),
          suppressed: Number(r.suppressed || 0).toLocaleString() })
        : t("cmp.countEmpty");
      this.count.dataset.count = String(n);
    } catch (e) {
      if (mine === this.seq) this.count.textContent = e.message;
    }
  }

  actions() {
    const c = this.campaign;
    if (!mayRun()) return h("p", { class: "muted" }, t("cmp.readonly"));
    const test = h("button", { type: "button", id: "campaign-test", onclick: async () => {
      if (!(await this.save(true))) return;
      try {
        const body = this.previewClient ? { client_id: this.previewClient } : {};
        const r = await api("POST", `/campaigns/${c.id}/test`, { body });
        toast(t("cmp.testSent", { email: (r && r.sent_to) || state.me.email }));
      } catch (e) {
        showError(this.form, e);
      }
    } }, t("cmp.test"));
    const start = h("button", { type: "button", class: "primary", id: "campaign-start", onclick: async () => {
      const saved = await this.save(true);
      if (!saved) return;
      const n = this.count.dataset.count || "?";
      if (!window.confirm(t("cmp.confirmStart", { name: saved.name, n }))) return;
      try {
        await api("POST", `/campaigns/${c.id}/start`, { body: {} });
        await renderCampaign(document.getElementById("main"), String(c.id));
      } catch (e) {
        showError(this.form, e);
      }
    } }, t("cmp.start"));
    const label = () => { start.textContent = t(this.f.send_at.value ? "cmp.startAt" : "cmp.start"); };
    this.f.send_at.addEventListener("input", label);
    label();
    return h("div", { class: "row campaign-actions" }, test, start);
  }

  previewBox() {
    const q = h("input", { name: "preview_q", placeholder: t("cmp.previewHint"), autocomplete: "off" });
    const matches = h("div", { class: "row", id: "campaign-preview-matches" });
    const find = async (ev) => {
      ev.preventDefault();
      try {
        const page = await api("GET", "/clients", { query: { q: q.value.trim(), limit: 8 } });
        clear(matches, page.items.length
          ? page.items.map((cl) => h("button", { type: "button", class: "small", dataset: { clientId: String(cl.id) },
            onclick: () => this.showPreview(cl.id) }, cl.name))
          : h("span", { class: "muted" }, t("cmp.noMatches")));
      } catch (e) {
        clear(matches, h("span", { class: "field-error" }, e.message));
      }
    };
    return h("section", { class: "card" }, h("h2", {}, t("cmp.preview")),
      h("form", { class: "filters", onsubmit: find }, field(t("cmp.previewFor"), q),
        h("button", { type: "submit" }, t("cmp.find"))),
      matches, this.preview);
  }

  async showPreview(clientId) {
    clear(this.preview, h("p", { class: "muted" }, t("loading")));
    if (!(await this.save(true))) {
      clear(this.preview);
      return;
    }
    try {
      const p = await api("POST", `/campaigns/${this.campaign.id}/preview`, { body: { client_id: clientId } });
      this.previewClient = clientId;
      clear(this.preview,
        p.email || p.to ? h("p", {}, t("cmp.previewTo", { email: p.email || p.to })) : null,
        h("p", { id: "campaign-preview-subject" }, t("cmp.previewSubject", { subject: p.subject })),
        htmlFrame(p.html || "", t("cmp.previewFrame")),
        p.text ? h("pre", { class: "campaign-preview-text" }, p.text) : null);
    } catch (e) {
      clear(this.preview, h("p", { class: "field-error", role: "alert" }, e.message));
    }
  }
}

const AUDIENCE_KEYS = ["segment_ids", "exclude_segment_ids", "exclude_contacted_days", "addresses", "positions"];

function audienceOf(c) {
  const out = {};
  for (const k of AUDIENCE_KEYS) {
    let v = c[k];
    if (k === "positions" && c.addresses !== "contacts") continue;
    if (Array.isArray(v)) v = [...v].sort();
    out[k] = v ?? null;
  }
  for (const k of ["segment_ids", "exclude_segment_ids"]) if (!out[k]) out[k] = [];
  if (!out.addresses) out.addresses = "primary";
  return out;
}

function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

class Results {
  constructor(box, campaign) {
    this.box = box;
    this.c = campaign;
    this.status = "";
    this.after = null;
    this.items = [];
    this.total = 0;
    this.seq = 0;
  }

  async load() {
    let summary = null;
    try {
      summary = await api("GET", `/campaigns/${this.c.id}/results`);
    } catch {
      summary = null; // the counts of the campaign itself are shown instead
    }
    const n = { ...(summary ? summary.counts : counts(this.c)) };
    // "sent": every message the server accepted (a reply or bounce came later)
    if (summary) n.sent = summary.sent;
    const shown = ["sent", "failed", "bounced", "unsubscribed", "replied", "unknown", "suppressed", "pending"];
    const filter = select("recipient_status",
      [["", t("cmp.allStatuses")], ...RECIPIENT_STATUSES.map((s) => [s, tOr(`rst.${s}`, s)])], this.status);
    filter.addEventListener("change", () => {
      this.status = filter.value;
      this.items = [];
      this.after = null;
      this.page();
    });
    this.list = h("tbody", {});
    this.more = h("div", { class: "row" });
    clear(this.box, h("section", { class: "card", "aria-labelledby": "campaign-results-h" },
      h("div", { class: "card-head" }, h("h2", { id: "campaign-results-h" }, t("cmp.results")),
        h("button", { type: "button", class: "small", id: "campaign-xlsx", onclick: () => this.download() },
          t("cmp.xlsx"))),
      h("dl", { class: "campaign-counts", id: "campaign-counts" }, shown.map((s) => h("div", { dataset: { status: s } },
        h("dt", {}, s === "sent" && summary ? t("cmp.sentAll") : tOr(`rst.${s}`, s)),
        h("dd", {}, String(n[s] || 0))))),
      Number(n.unknown || 0) ? h("p", { class: "warn-note", role: "note" }, t("cmp.unknownNote")) : null,
      h("h3", {}, t("cmp.list")),
      h("div", { class: "filters" }, field(t("cmp.filter"), filter)),
      h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "campaign-recipients" },
        h("thead", {}, h("tr", {}, ["cmp.client", "cmp.email", "cmp.status", "cmp.error", "cmp.when"]
          .map((k) => h("th", { scope: "col" }, t(k))))), this.list)),
      this.more));
    await this.page();
  }

  async page() {
    const mine = ++this.seq; // a slower answer to an earlier filter is dropped
    let page;
    try {
      page = await api("GET", `/campaigns/${this.c.id}/results/recipients`,
        { query: { status: this.status, limit: PAGE, after: this.after } });
    } catch (e) {
      if (mine === this.seq) clear(this.more, h("p", { class: "field-error", role: "alert" }, e.message));
      return;
    }
    if (mine !== this.seq) return;
    if (this.items.length === 0) clear(this.list);
    this.items.push(...page.items);
    this.total = page.total;
    this.after = page.next_after;
    this.list.append(...page.items.map((r) => h("tr", {
      class: r.status === "unknown" ? "rcpt-unknown" : null,
      dataset: { status: r.status, clientId: String(r.client_id ?? "") },
    },
    h("td", {}, r.client_id ? h("a", { href: `#/clients/${r.client_id}` }, r.client_name || `#${r.client_id}`) : t("none")),
    h("td", {}, r.email),
    h("td", {}, h("span", { class: `badge rst-${r.status}` }, tOr(`rst.${r.status}`, r.status))),
    h("td", { class: "small" }, r.error || ""),
    h("td", {}, fmtDate(r.sent_at || r.updated_at || null)))));
    clear(this.more, h("span", { class: "muted", id: "campaign-recipients-shown" },
      t("cmp.shown", { n: this.items.length, total: this.total })),
    this.after && this.items.length < this.total
      ? h("button", { type: "button", onclick: () => this.page() }, t("cmp.more")) : null);
  }

  async download() {
    const url = new URL(`/api/v1/campaigns/${this.c.id}/recipients.xlsx`, location.origin);
    if (this.status) url.searchParams.set("status", this.status);
    url.searchParams.set("lang", getLang());
    try {
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
      const blob = await resp.blob();
      const a = h("a", { href: URL.createObjectURL(blob), download: `campaign-${this.c.id}-recipients.xlsx` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) {
      toast(e.message, "error");
    }
  }
}
