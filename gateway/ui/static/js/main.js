// Entry point: sign-in, navigation (hash routes), language switch, the live connection.
import { renderAdmin } from "./admin.js";
import { renderAnalytics } from "./analytics.js";
import { renderAudit } from "./audit.js";
import { api, setCsrf } from "./api.js";
import { renderProfile } from "./account.js";
import { renderCampaign, renderCampaigns } from "./campaigns.js";
import { bindDialForm } from "./call.js";
import { renderClientCard, renderClients } from "./clients.js";
import { bindMenu, clear, h } from "./dom.js";
import { renderDealCard } from "./dealcard.js";
import { renderDeals } from "./deals.js";
import { getLang, onLangChange, setLang, t, translateStatic } from "./i18n.js";
import { renderImport } from "./importer.js";
import { renderLeadCard } from "./leadcard.js";
import { renderLeads } from "./leads.js";
import { renderSettings } from "./settings.js";
import { renderSetPassword } from "./setpassword.js";
import { renderSignIn } from "./signin.js";
import { handleLive, hideCallerCard, LiveClient } from "./live.js";
import { renderPlans } from "./plans.js";
import { loadUsers, state } from "./state.js";
import { renderSegment, renderSegments } from "./segments.js";
import { renderTasks } from "./tasks.js";

const $ = (id) => document.getElementById(id);
let live = null;

const ROUTES = [
  [/^#\/leads$/, (m) => renderLeads(m)],
  [/^#\/leads\/(\d+)$/, (m, id) => renderLeadCard(m, id)],
  [/^#\/clients(?:\?q=(.*))?$/, (m, q) => renderClients(m, q === undefined ? undefined : decoded(q))],
  [/^#\/clients\/(\d+)$/, (m, id) => renderClientCard(m, id)],
  [/^#\/deals$/, (m) => renderDeals(m)],
  [/^#\/deals\/(\d+)$/, (m, id) => renderDealCard(m, id)],
  [/^#\/tasks$/, (m) => renderTasks(m)],
  [/^#\/analytics$/, (m) => renderAnalytics(m)],
  [/^#\/admin(?:\/(\w+))?$/, (m, tab) => renderAdmin(m, tab)],
  [/^#\/segments$/, (m) => renderSegments(m)],
  [/^#\/segments\/(\d+|new)$/, (m, id) => renderSegment(m, id)],
  [/^#\/plans$/, (m) => renderPlans(m)],
  [/^#\/campaigns$/, (m) => renderCampaigns(m)],
  [/^#\/campaigns\/(\d+|new)$/, (m, id) => renderCampaign(m, id)],
  [/^#\/audit$/, (m) => renderAudit(m)],
  [/^#\/import$/, (m) => renderImport(m)],
  [/^#\/settings$/, (m) => renderSettings(m)],
  [/^#\/profile$/, (m) => renderProfile(m, { onSignedOut: () => signOut(false) })],
];

function decoded(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

async function route() {
  if (!state.me) return;
  const hash = location.hash || "#/leads";
  const main = $("main");
  for (const [re, render] of ROUTES) {
    const m = hash.match(re);
    if (m) {
      const view = hash.split("/")[1].split("?")[0];
      for (const a of document.querySelectorAll("#nav a")) {
        if (a.dataset.view === view) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      }
      await render(main, m[1]);
      return;
    }
  }
  location.hash = "#/leads";
}

const SET_PASSWORD_PATH = "/ui/set-password";

function showSignin(notice = "", email = "") {
  state.me = null;
  $("shell").hidden = true;
  $("signin").hidden = false;
  const box = $("signin-body");
  if (location.pathname === SET_PASSWORD_PATH) {
    const token = new URLSearchParams(location.search).get("token") || "";
    renderSetPassword(box, token, (doneEmail, doneNotice) => {
      history.replaceState(null, "", "/ui/");
      showSignin(doneNotice, doneEmail);
    });
    $("signin-setup").hidden = true;
    return;
  }
  renderSignIn(box, { onSignedIn: enter, notice, email });
  api("GET", "/setup").then((setup) => {
    $("signin-setup").hidden = !setup.needs_first_admin;
    $("signin-setup-command").textContent = setup.command || "";
  }).catch(() => {});
}

async function enter(user) {
  // the sign-in answered the user; /me also answers the session's CSRF token
  const me = await api("GET", "/me");
  state.me = { ...(user || {}), ...me };
  await loadUsers();
  $("signin").hidden = true;
  $("shell").hidden = false;
  // The audit log is for admins and supervisors.
  document.querySelector('#nav a[data-view="audit"]').hidden = me.role === "manager";
  renderMe();
  $("nav-admin").hidden = !["admin", "supervisor"].includes(me.role);
  $("nav-campaigns").hidden = !["admin", "supervisor"].includes(me.role);
  state.campaigns = null;
  if (me.role === "manager") {
    api("GET", "/campaign-access").then((a) => {
      state.campaigns = a;
      $("nav-campaigns").hidden = !a.may_send;
    }).catch(() => {});
  }
  if (live) live.stop();
  live = new LiveClient({
    onEvent: (kind, payload) => handleLive(kind, payload, {
      onNewLead: () => (location.hash || "#/leads") === "#/leads" && route(),
    }),
    onStatus: (up) => {
      const el = $("live-status");
      el.textContent = t(up ? "live.online" : "live.offline");
      el.classList.toggle("up", up);
      el.dataset.up = String(up);
    },
  });
  live.start();
  if ("Notification" in window && Notification.permission === "default") $("notify-enable").hidden = false;
  await route();
}

function renderMe() {
  if (!state.me) return;
  clear($("me"), h("strong", {}, state.me.name || state.me.email),
    h("span", { class: "muted" }, ` · ${t(`role.${state.me.role}`)}`),
    state.me.extension ? h("span", { class: "muted" }, ` · ☎ ${state.me.extension}`) : null);
  $("me").title = $("me").textContent;
  $("nav-settings").hidden = state.me.role !== "admin";
}

/** Leave: `tellServer` ends the session on the server too (the "sign out" button). */
async function signOut(tellServer = true, notice = "") {
  if (live) live.stop();
  live = null;
  if (tellServer && state.me) {
    try {
      await api("POST", "/auth/logout", { body: {} });
    } catch {
      /* the session is gone already */
    }
  }
  setCsrf(null);
  hideCallerCard();
  clear($("live-feed"));
  // signed out on purpose: the next person starts at the leads; a session that ended
  // comes back to where it was
  if (tellServer && location.hash) history.replaceState(null, "", location.pathname + location.search);
  showSignin(notice);
}

function boot() {
  translateStatic();
  for (const btn of document.querySelectorAll("[data-lang-switch]")) {
    btn.addEventListener("click", () => setLang(getLang() === "ru" ? "en" : "ru"));
  }
  onLangChange(() => {
    translateStatic();
    renderMe();
    if (live) $("live-status").textContent = t($("live-status").dataset.up === "true" ? "live.online" : "live.offline");
    if (state.me) route();
    else showSignin();
  });
  $("signout").addEventListener("click", () => signOut(true));
  $("notify-enable").addEventListener("click", async () => {
    await Notification.requestPermission();
    $("notify-enable").hidden = Notification.permission !== "default";
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("caller-card").hidden && !$("modal").open) hideCallerCard();
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("crm:unauthorized", () => {
    if (state.me) signOut(false, t("signin.ended"));
  });
  bindDialForm($("dial-form"));
  bindMenu($("menu-toggle"), $("topbar-menu"));
  $("global-search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("global-q").value.trim();
    const target = q ? `#/clients?q=${encodeURIComponent(q)}` : "#/clients";
    if (location.hash === target) route();
    else location.hash = target;
  });
  if (location.pathname === SET_PASSWORD_PATH) {
    showSignin();
    return;
  }
  // a session cookie from before: straight in; none (401): the sign-in page
  enter(null).catch((e) => showSignin(e.status === 401 ? "" : e.message));
}

boot();
