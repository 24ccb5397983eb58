// The profile page (#/profile): change the password; two-factor sign-in (enrol with a QR
// code, recovery codes shown once, turn off); the sessions (device, address, last seen;
// end any); personal access tokens for integrations (create with a name, scope and
// expiry, shown once; list; revoke).
import { api } from "./api.js";
import { clear, clearErrors, field, fmtDate, h, select, showError, toast } from "./dom.js";
import { addStrings, t } from "./i18n.js";
import { qrImage, recoveryCodes } from "./signin.js";
import { state } from "./state.js";

addStrings({
  ru: {
    "nav.profile": "Профиль", "acc.title": "Профиль",
    "acc.password": "Пароль", "acc.current": "Текущий пароль", "acc.new": "Новый пароль",
    "acc.repeat": "Повторите новый пароль", "acc.change": "Сменить пароль",
    "acc.changed": "Пароль изменён", "acc.mismatch": "Пароли не совпадают",
    "acc.tf": "Двухфакторный вход",
    "acc.tfOff": "Выключен. При входе, кроме пароля, будет нужен код из приложения-аутентификатора на телефоне.",
    "acc.tfOn": "Включён с {at}. Осталось резервных кодов: {n}.",
    "acc.tfRequired": "Для вашей роли двухфакторный вход обязателен.",
    "acc.tfSetup": "Подключить", "acc.tfScan": "Отсканируйте QR-код приложением-аутентификатором (Яндекс Ключ, Google Authenticator, FreeOTP) и введите код из него.",
    "acc.tfEnable": "Включить", "acc.tfEnabled": "Двухфакторный вход включён",
    "acc.tfDisable": "Выключить", "acc.tfDisabled": "Двухфакторный вход выключен",
    "acc.tfDisableHint": "Чтобы выключить, введите пароль и код из приложения (или резервный код).",
    "acc.sessions": "Сеансы", "acc.device": "Устройство", "acc.address": "Адрес",
    "acc.started": "Вход", "acc.lastSeen": "Активность", "acc.thisOne": "этот сеанс",
    "acc.end": "Завершить", "acc.ended": "Сеанс завершён",
    "acc.endThis": "Это текущий сеанс: вы выйдете. Продолжить?",
    "acc.tokens": "Токены для интеграций",
    "acc.tokensHint": "Для сайта, 1С, скриптов. Токен действует от вашего имени; «только чтение» не может ничего менять.",
    "acc.tokenName": "Название", "acc.scope": "Права", "acc.scopeRead": "только чтение",
    "acc.scopeFull": "полные", "acc.expires": "Действует до (необязательно)", "acc.expiresCol": "Действует до",
    "acc.create": "Создать токен", "acc.created": "Создан", "acc.lastUsed": "Использован",
    "acc.never": "бессрочно", "acc.revoke": "Отозвать",
    "acc.revokeConfirm": "Отозвать токен «{name}»? Интеграции с ним перестанут работать.",
    "acc.revoked": "Токен отозван",
    "acc.tokenOnce": "Скопируйте токен сейчас — он показывается один раз.",
    "acc.tokenTitle": "Новый токен", "acc.noTokens": "Токенов нет",
  },
  en: {
    "nav.profile": "Profile", "acc.title": "Profile",
    "acc.password": "Password", "acc.current": "Current password", "acc.new": "New password",
    "acc.repeat": "Repeat the new password", "acc.change": "Change the password",
    "acc.changed": "The password is changed", "acc.mismatch": "The passwords differ",
    "acc.tf": "Two-factor sign-in",
    "acc.tfOff": "Off. When on, signing in also needs a code from an authenticator app on your phone.",
    "acc.tfOn": "On since {at}. Recovery codes left: {n}.",
    "acc.tfRequired": "Your role must sign in with two factors.",
    "acc.tfSetup": "Set up", "acc.tfScan": "Scan the QR code with an authenticator app (Yandex Key, Google Authenticator, FreeOTP) and enter the code it shows.",
    "acc.tfEnable": "Turn on", "acc.tfEnabled": "Two-factor sign-in is on",
    "acc.tfDisable": "Turn off", "acc.tfDisabled": "Two-factor sign-in is off",
    "acc.tfDisableHint": "To turn it off, enter your password and a code from the app (or a recovery code).",
    "acc.sessions": "Sessions", "acc.device": "Device", "acc.address": "Address",
    "acc.started": "Signed in", "acc.lastSeen": "Last seen", "acc.thisOne": "this session",
    "acc.end": "End", "acc.ended": "The session is ended",
    "acc.endThis": "This is your current session: you will be signed out. Go on?",
    "acc.tokens": "Tokens for integrations",
    "acc.tokensHint": "For a website, 1C, scripts. A token acts as you; a read-only one cannot change anything.",
    "acc.tokenName": "Name", "acc.scope": "Scope", "acc.scopeRead": "read only",
    "acc.scopeFull": "full", "acc.expires": "Expires (optional)", "acc.expiresCol": "Expires",
    "acc.create": "Create a token", "acc.created": "Created", "acc.lastUsed": "Last used",
    "acc.never": "never expires", "acc.revoke": "Revoke",
    "acc.revokeConfirm": "Revoke the token “{name}”? Integrations using it will stop working.",
    "acc.revoked": "The token is revoked",
    "acc.tokenOnce": "Copy the token now: it is shown once.",
    "acc.tokenTitle": "New token", "acc.noTokens": "No tokens",
  },
});

/** A form that shows an ApiError next to the field it names. */
function form(id, onsubmit, ...children) {
  const el = h("form", { id, novalidate: true }, ...children, h("p", { class: "form-error field-error", role: "alert" }));
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(el);
    const button = el.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      await onsubmit(el);
    } catch (e) {
      showError(el, e);
    } finally {
      if (button) button.disabled = false;
    }
  });
  return el;
}

const section = (id, title, ...body) => h("section", { class: "card account-section", id, "aria-labelledby": `${id}-title` },
  h("h2", { id: `${id}-title` }, title), ...body);

export async function renderProfile(main, { onSignedOut }) {
  const me = state.me;
  const tfBox = h("div", {}, h("p", { class: "muted" }, t("loading")));
  const sessionsBox = h("div", {}, h("p", { class: "muted" }, t("loading")));
  const tokensBox = h("div", {}, h("p", { class: "muted" }, t("loading")));
  clear(main,
    h("div", { class: "view-head" }, h("h1", {}, t("acc.title"))),
    h("p", { class: "muted" }, `${me.name || me.email} · ${me.email} · ${t(`role.${me.role}`)}`),
    h("div", { class: "account" },
      section("acc-password", t("acc.password"), passwordForm()),
      section("acc-two-factor", t("acc.tf"), tfBox),
      section("acc-sessions", t("acc.sessions"), sessionsBox),
      section("acc-tokens", t("acc.tokens"), h("p", { class: "muted small" }, t("acc.tokensHint")), tokensBox)));
  await Promise.all([
    loadTwoFactor(tfBox),
    loadSessions(sessionsBox, onSignedOut),
    loadTokens(tokensBox),
  ].map((p) => p.catch((e) => toast(e.message, "error"))));
}

function passwordForm() {
  const input = (name, autocomplete) => h("input", { name, type: "password", autocomplete, required: true });
  const current = input("current", "current-password");
  const next = input("new", "new-password");
  const repeat = input("repeat", "new-password");
  return form("password-form", async (el) => {
    if (next.value !== repeat.value) throw { message: t("acc.mismatch"), field: "repeat" };
    await api("POST", "/auth/password", { body: { current: current.value, new: next.value } });
    el.reset();
    toast(t("acc.changed"), "ok");
  },
  field(t("acc.current"), current), field(t("acc.new"), next), field(t("acc.repeat"), repeat),
  h("button", { type: "submit" }, t("acc.change")));
}

// ---- two-factor ---------------------------------------------------------------------

async function loadTwoFactor(box) {
  const st = await api("GET", "/auth/two-factor");
  if (!st.enabled) {
    clear(box,
      h("p", { id: "two-factor-state" }, t("acc.tfOff")),
      st.required ? h("p", { class: "notice" }, t("acc.tfRequired")) : null,
      h("button", { type: "button", class: "primary", onclick: () => startSetup(box) }, t("acc.tfSetup")));
    return;
  }
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const code = h("input", { name: "code", autocomplete: "one-time-code", maxlength: "32", required: true });
  clear(box,
    h("p", { id: "two-factor-state" }, t("acc.tfOn", { at: fmtDate(st.enabled_at), n: st.recovery_codes_left })),
    st.required ? h("p", { class: "muted" }, t("acc.tfRequired")) : form("two-factor-disable", async () => {
      await api("POST", "/auth/two-factor/disable", { body: { password: password.value, code: code.value.trim() } });
      toast(t("acc.tfDisabled"), "ok");
      await loadTwoFactor(box);
    },
    h("p", { class: "muted small" }, t("acc.tfDisableHint")),
    field(t("signin.password"), password), field(t("tf.code"), code),
    h("button", { type: "submit" }, t("acc.tfDisable"))));
}

async function startSetup(box) {
  const setup = await api("POST", "/auth/two-factor/setup", { body: {} });
  const code = h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric", maxlength: "8", required: true });
  clear(box,
    h("p", { class: "muted" }, t("acc.tfScan")),
    qrImage(setup.qr_svg),
    h("p", { class: "muted small" }, t("tf.secret"), " ", h("code", { class: "secret" }, setup.secret)),
    form("two-factor-enable", async () => {
      const out = await api("POST", "/auth/two-factor/enable", { body: { code: code.value.trim() } });
      toast(t("acc.tfEnabled"), "ok");
      clear(box, recoveryCodes(out.recovery_codes, () => loadTwoFactor(box)));
    }, field(t("tf.code"), code), h("button", { type: "submit", class: "primary" }, t("acc.tfEnable"))));
  code.focus();
}

// ---- sessions -----------------------------------------------------------------------

async function loadSessions(box, onSignedOut) {
  const page = await api("GET", "/auth/sessions");
  const end = async (s) => {
    if (s.current && !window.confirm(t("acc.endThis"))) return;
    try {
      await api("DELETE", `/auth/sessions/${s.id}`);
      if (s.current) return onSignedOut();
      toast(t("acc.ended"), "ok");
      await loadSessions(box, onSignedOut);
    } catch (e) {
      toast(e.message, "error");
    }
  };
  clear(box, h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "sessions-table" },
    h("thead", {}, h("tr", {}, ["acc.device", "acc.address", "acc.started", "acc.lastSeen"].map((k) => h("th", {}, t(k))), h("th", {}, ""))),
    h("tbody", {}, page.items.map((s) => h("tr", { dataset: { sessionId: String(s.id) }, class: s.current ? "current" : "" },
      h("td", { "data-label": t("acc.device") }, s.device || t("none"),
        s.current ? h("span", { class: "badge" }, ` ${t("acc.thisOne")}`) : null),
      h("td", { "data-label": t("acc.address") }, s.address || t("none")),
      h("td", { "data-label": t("acc.started") }, fmtDate(s.created_at)),
      h("td", { "data-label": t("acc.lastSeen") }, fmtDate(s.last_seen_at)),
      h("td", { class: "actions" }, h("button", { type: "button", class: "small", onclick: () => end(s) }, t("acc.end")))))))));
}

// ---- personal access tokens -----------------------------------------------------------

async function loadTokens(box) {
  const page = await api("GET", "/auth/tokens");
  const name = h("input", { name: "name", maxlength: "100", required: true, autocomplete: "off" });
  const scope = select("scope", [["read", t("acc.scopeRead")], ["full", t("acc.scopeFull")]], "read");
  const expires = h("input", { name: "expires_at", type: "date" });
  const shown = h("div", { id: "token-shown" });
  const create = form("token-form", async (el) => {
    const body = { name: name.value.trim(), scope: scope.value };
    // the end of the chosen day, in the browser's time zone
    if (expires.value) body.expires_at = new Date(`${expires.value}T23:59:59`).toISOString();
    const out = await api("POST", "/auth/tokens", { body });
    el.reset();
    await loadTokens(box);
    box.querySelector("#token-shown").replaceWith(tokenOnce(out));
  },
  h("div", { class: "row wrap" }, field(t("acc.tokenName"), name), field(t("acc.scope"), scope), field(t("acc.expires"), expires)),
  h("button", { type: "submit" }, t("acc.create")));
  const revoke = async (tok) => {
    if (!window.confirm(t("acc.revokeConfirm", { name: tok.name }))) return;
    try {
      await api("DELETE", `/auth/tokens/${tok.id}`);
      toast(t("acc.revoked"), "ok");
      await loadTokens(box);
    } catch (e) {
      toast(e.message, "error");
    }
  };
  const items = page.items || [];
  clear(box, shown, create,
    items.length ? h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "tokens-table" },
      h("thead", {}, h("tr", {}, ["acc.tokenName", "acc.scope", "acc.created", "acc.lastUsed", "acc.expiresCol"].map((k) => h("th", {}, t(k))), h("th", {}, ""))),
      h("tbody", {}, items.map((tok) => h("tr", { dataset: { tokenId: String(tok.id) } },
        h("td", { "data-label": t("acc.tokenName") }, tok.name),
        h("td", { "data-label": t("acc.scope") }, tok.scope === "full" ? t("acc.scopeFull") : t("acc.scopeRead")),
        h("td", { "data-label": t("acc.created") }, fmtDate(tok.created_at)),
        h("td", { "data-label": t("acc.lastUsed") }, fmtDate(tok.last_used_at)),
        h("td", { "data-label": t("acc.expiresCol") }, tok.expires_at ? fmtDate(tok.expires_at) : t("acc.never")),
        h("td", { class: "actions" }, h("button", { type: "button", class: "small", onclick: () => revoke(tok) }, t("acc.revoke"))))))))
      : h("p", { class: "muted" }, t("acc.noTokens")));
}

function tokenOnce(out) {
  return h("div", { class: "notice", id: "token-shown", role: "status" },
    h("p", {}, h("strong", {}, `${t("acc.tokenTitle")}: ${out.name || ""}`), " — ", t("acc.tokenOnce")),
    h("input", { class: "token", readonly: true, value: out.token, "aria-label": t("acc.tokenTitle"),
      onfocus: (ev) => ev.target.select() }));
}
