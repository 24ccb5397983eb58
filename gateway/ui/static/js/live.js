// The live panel: WebSocket /live?ticket=... (a single-use ticket from
// POST /api/v1/live/ticket, so the API token never appears in a URL), reconnecting by
// itself; the caller card, call states, new leads, messages and task reminders, with
// browser notifications.
import { api } from "./api.js";
import { callButton } from "./call.js";
import { clear, fmtDate, fmtMoney, h } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { ownerName } from "./state.js";

const MAX_FEED = 50;
const PING_MS = 25000;

export class LiveClient {
  constructor({ onEvent, onStatus }) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.delay = 1000;
    this.stopped = false;
    this.ws = null;
    this.timer = null;
    this.ping = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  async connect() {
    if (this.stopped) return;
    let ticket;
    try {
      ({ ticket } = await api("POST", "/live/ticket"));
    } catch (exc) {
      // 401/403: the token was rotated or the user deactivated; api() signs out on 401.
      this.onStatus(false);
      if (this.stopped || exc.status === 401 || exc.status === 403) return;
      this.retry();
      return;
    }
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/live?ticket=${encodeURIComponent(ticket)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 1000;
      this.onStatus(true);
      this.ping = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), PING_MS);
    };
    ws.onmessage = (msg) => {
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (data && data.kind && data.kind !== "pong") this.onEvent(data.kind, data.payload || {});
    };
    ws.onclose = () => {
      clearInterval(this.ping);
      this.onStatus(false);
      if (this.stopped) return;
      this.retry();
    };
    ws.onerror = () => ws.close();
  }

  retry() {
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 30000);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.ping);
    if (this.ws) this.ws.close();
  }
}

export function notify(title, body) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    new Notification(title, { body, tag: "crmhub", lang: document.documentElement.lang });
  } catch {
    /* some browsers only allow notifications from a service worker */
  }
}

export function addFeed(text, kind, href) {
  const feed = document.getElementById("live-feed");
  const item = h("li", { class: `feed-item fk-${kind}` },
    h("time", {}, new Date().toLocaleTimeString()),
    href ? h("a", { href }, text) : h("span", {}, text));
  feed.prepend(item);
  while (feed.children.length > MAX_FEED) feed.lastElementChild.remove();
}

let currentCall = null;

/** The card that pops up while the phone rings (`caller_card` event). */
export function showCallerCard(card) {
  const box = document.getElementById("caller-card");
  currentCall = card.linkedid || null;
  const client = card.client;
  const name = client ? client.name : t("live.newCall");
  const owner = card.owner_id ?? (card.lead && card.lead.owner_id);
  const target = client ? { client_id: client.id } : card.lead ? { lead_id: card.lead.id }
    : card.caller ? { number: card.caller } : null;
  clear(box,
    h("header", {},
      h("span", { class: "pulse", "aria-hidden": "true" }, "☎"),
      h("div", {},
        h("div", { class: "muted small" }, t("live.incoming")),
        h("h2", { id: "caller-title" }, name),
        h("div", { class: "caller-number" }, card.caller || t("none"))),
      h("button", { type: "button", class: "close", "aria-label": t("close"),
        onclick: hideCallerCard }, "×")),
    h("p", { class: "call-state", id: "caller-state" }, tOr("cs.call_started", "")),
    owner !== undefined && owner !== null
      ? h("p", {}, h("span", { class: "muted" }, `${t("live.owner")}: `), ownerName(owner)) : null,
    card.open_deals && card.open_deals.length ? h("div", {},
      h("h3", {}, t("live.openDeals")),
      h("ul", { class: "plain" }, card.open_deals.map((d) => h("li", {},
        d.title, " · ", fmtMoney(d.amount))))) : null,
    card.last_interactions && card.last_interactions.length ? h("div", {},
      h("h3", {}, t("live.last")),
      h("ul", { class: "plain small" }, card.last_interactions.map((i) => h("li", {},
        fmtDate(i.occurred_at), " · ", tOr(`tl.${i.channel}`, i.channel),
        i.outcome ? ` · ${tOr(`outcome.${i.outcome}`, i.outcome)}` : "",
        i.subject ? ` · ${i.subject}` : "")))) : null,
    h("div", { class: "row" },
      client ? h("a", { class: "button primary", href: `#/clients/${client.id}`,
        onclick: hideCallerCard }, t("live.openClient")) : null,
      !client && card.lead ? h("a", { class: "button", href: "#/leads",
        onclick: hideCallerCard }, t("live.openLead")) : null,
      target ? callButton(target) : null));
  box.hidden = false;
  box.querySelector("button.close").focus({ preventScroll: true });
}

export function hideCallerCard() {
  document.getElementById("caller-card").hidden = true;
  currentCall = null;
}

/** A `call_state` event: update the open card of the same call; close it when ended. */
export function updateCallState(payload) {
  if (!currentCall || payload.linkedid !== currentCall) return;
  const el = document.getElementById("caller-state");
  if (el) el.textContent = tOr(`cs.${payload.state}`, payload.state);
  if (payload.state === "call_ended" || payload.state === "call_missed") {
    const call = currentCall;
    setTimeout(() => currentCall === call && hideCallerCard(), 15000);
  }
}

/** Route one live event to the card, the feed and a browser notification. */
export function handleLive(kind, p, { onNewLead } = {}) {
  if (kind === "hello") return;
  if (kind === "caller_card") {
    showCallerCard(p);
    const who = p.client ? p.client.name : t("live.newCall");
    addFeed(`${t("live.incoming")}: ${who} ${p.caller || ""}`, kind,
      p.client ? `#/clients/${p.client.id}` : null);
    notify(`${t("live.incoming")}: ${who}`, p.caller || "");
  } else if (kind === "call_state") {
    updateCallState(p);
    addFeed(t("live.callState", { caller: p.linkedid || "", state: tOr(`cs.${p.state}`, p.state) }),
      kind, p.client_id ? `#/clients/${p.client_id}` : null);
  } else if (kind === "new_lead") {
    const text = t("live.newLead", { title: p.title || `#${p.lead_id}` });
    addFeed(text, kind, "#/leads");
    notify(text, tOr(`source.${p.source}`, p.source || ""));
    if (onNewLead) onNewLead(p);
  } else if (kind === "new_message") {
    const text = t("live.newMessage", { channel: tOr(`tl.${p.channel}`, p.channel), preview: p.preview || "" });
    addFeed(text, kind, p.client_id ? `#/clients/${p.client_id}` : null);
    notify(text, "");
  } else if (kind === "task_reminder") {
    const text = t("live.reminder", { title: p.title || `#${p.task_id || p.id || ""}` });
    addFeed(text, kind, "#/tasks");
    notify(text, p.due_at ? fmtDate(p.due_at) : "");
  } else if (kind === "outbox_status") {
    addFeed(t("live.outbox", { channel: p.channel || p.kind || "", status: p.status || "" })
      + (p.error ? ` — ${p.error}` : ""), kind, null);
  } else if (kind === "sla_warning") {
    const text = t("live.sla", { text: p.message || p.title || JSON.stringify(p).slice(0, 120) });
    addFeed(text, kind, null);
    notify(text, "");
  } else {
    addFeed(kind, kind, null);
  }
}
