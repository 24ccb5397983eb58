// The sign-in page: email and password; then, when the account asks for it, the
// two-factor step (a code from the app or a recovery code) or the enrolment its role
// requires (QR code, first code, recovery codes); and "forgot password" (a reset link by
// email).  `renderSignIn(box, {onSignedIn, notice, email})` draws it into `box`.
import { api } from "./api.js";
import { clear, clearErrors, field, h, showError } from "./dom.js";
import { addStrings, t } from "./i18n.js";

addStrings({
  ru: {
    "signin.hint": "Войдите, чтобы продолжить",
    "signin.email": "Почта", "signin.password": "Пароль", "signin.submit": "Войти",
    "signin.emptyEmail": "Введите почту", "signin.emptyPassword": "Введите пароль",
    "signin.forgot": "Забыли пароль?", "signin.back": "← Ко входу",
    "signin.flood": "Слишком много попыток. Попробуйте через {s} с.",
    "signin.ended": "Сеанс завершён — войдите снова",
    "signin.firstAdmin": "Пользователей ещё нет. Создайте первого администратора на сервере — команда напечатает ссылку для входа:",
    "tf.stepTitle": "Двухфакторный вход",
    "tf.stepHint": "Введите 6-значный код из приложения-аутентификатора или один из резервных кодов.",
    "tf.code": "Код", "tf.confirm": "Подтвердить", "tf.emptyCode": "Введите код",
    "tf.setupTitle": "Подключите двухфакторный вход",
    "tf.setupRequired": "Для вашей роли вход с двумя факторами обязателен. Отсканируйте QR-код приложением-аутентификатором (Яндекс Ключ, Google Authenticator, FreeOTP) и введите код из него.",
    "tf.qr": "QR-код для приложения-аутентификатора",
    "tf.secret": "Или введите ключ вручную:",
    "tf.codesTitle": "Резервные коды",
    "tf.codesHint": "Сохраните эти коды в надёжном месте: каждый работает один раз, если телефона нет под рукой. Больше они не будут показаны.",
    "tf.codesDone": "Я сохранил коды",
    "forgot.title": "Восстановление пароля",
    "forgot.hint": "Укажите почту — мы отправим ссылку, по которой можно задать новый пароль.",
    "forgot.submit": "Отправить ссылку",
    "forgot.sent": "Если такой адрес есть в crmhub, на него отправлена ссылка. Она действует 24 часа.",
  },
  en: {
    "signin.hint": "Sign in to continue",
    "signin.email": "Email", "signin.password": "Password", "signin.submit": "Sign in",
    "signin.emptyEmail": "Enter your email", "signin.emptyPassword": "Enter your password",
    "signin.forgot": "Forgot your password?", "signin.back": "← Back to sign-in",
    "signin.flood": "Too many attempts. Try again in {s} s.",
    "signin.ended": "Your session has ended: sign in again",
    "signin.firstAdmin": "There are no users yet. Create the first admin on the server; the command prints a sign-in link:",
    "tf.stepTitle": "Two-factor sign-in",
    "tf.stepHint": "Enter the 6-digit code from your authenticator app or one of your recovery codes.",
    "tf.code": "Code", "tf.confirm": "Confirm", "tf.emptyCode": "Enter the code",
    "tf.setupTitle": "Set up two-factor sign-in",
    "tf.setupRequired": "Your role must sign in with two factors. Scan the QR code with an authenticator app (Yandex Key, Google Authenticator, FreeOTP) and enter the code it shows.",
    "tf.qr": "QR code for the authenticator app",
    "tf.secret": "Or type the key by hand:",
    "tf.codesTitle": "Recovery codes",
    "tf.codesHint": "Keep these codes somewhere safe: each works once when your phone is not at hand. They will not be shown again.",
    "tf.codesDone": "I have saved the codes",
    "forgot.title": "Reset your password",
    "forgot.hint": "Enter your email: we will send a link to set a new password.",
    "forgot.submit": "Send the link",
    "forgot.sent": "If this address is in crmhub, a link was sent to it. It works for 24 hours.",
  },
});

/** An error of a sign-in step as text: a flood names the seconds to wait. */
export function stepError(e) {
  if (e.status === 429) return { message: t("signin.flood", { s: e.retryAfter || 60 }), field: e.field };
  return e;
}

function form(onsubmit, ...children) {
  const el = h("form", { novalidate: true, class: "signin-form" }, ...children,
    h("p", { class: "form-error field-error", role: "alert" }));
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(el);
    const button = el.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await onsubmit(el);
    } catch (e) {
      showError(el, stepError(e));
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** The QR code (server-made SVG) as an image: nothing of it runs in the page. */
export function qrImage(svg) {
  return h("img", {
    class: "qr", alt: t("tf.qr"), width: "200", height: "200",
    src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`,
  });
}

/** The recovery codes, shown once, with the button that goes on. */
export function recoveryCodes(codes, onDone) {
  return h("div", { class: "recovery" },
    h("h2", {}, t("tf.codesTitle")),
    h("p", { class: "muted" }, t("tf.codesHint")),
    h("ol", { class: "codes", id: "recovery-codes" }, codes.map((c) => h("li", {}, h("code", {}, c)))),
    onDone ? h("button", { type: "button", class: "primary", onclick: onDone }, t("tf.codesDone")) : null);
}

export function renderSignIn(box, { onSignedIn, notice = "", email = "" }) {
  const emailInput = h("input", { name: "email", type: "email", autocomplete: "username", required: true,
    value: email, autocapitalize: "none", spellcheck: "false" });
  const passwordInput = h("input", { name: "password", type: "password", autocomplete: "current-password",
    required: true });
  const signin = form(async (el) => {
    const body = { email: emailInput.value.trim(), password: passwordInput.value };
    if (!body.email) throw { message: t("signin.emptyEmail"), field: "email" };
    if (!body.password) throw { message: t("signin.emptyPassword"), field: "password" };
    const out = await api("POST", "/auth/login", { body });
    el.reset();
    if (out.two_factor_required) renderCodeStep(box, out.challenge, onSignedIn);
    else if (out.two_factor_setup_required) await renderForcedSetup(box, out.challenge, onSignedIn);
    else await onSignedIn(out.user);
  },
  h("p", { class: "muted" }, t("signin.hint")),
  notice ? h("p", { class: "notice", role: "status", id: "signin-notice" }, notice) : null,
  field(t("signin.email"), emailInput),
  field(t("signin.password"), passwordInput),
  h("div", { class: "row between" },
    h("button", { type: "submit", class: "primary" }, t("signin.submit")),
    h("button", { type: "button", class: "link", onclick: () => renderForgot(box, emailInput.value.trim(), onSignedIn) },
      t("signin.forgot"))));
  signin.id = "signin-form";
  clear(box, signin);
  (email ? passwordInput : emailInput).focus();
}

function backLink(box, onSignedIn) {
  return h("button", { type: "button", class: "link", onclick: () => renderSignIn(box, { onSignedIn }) },
    t("signin.back"));
}

function renderCodeStep(box, challenge, onSignedIn) {
  const code = h("input", { name: "code", autocomplete: "one-time-code", inputmode: "text",
    autocapitalize: "none", spellcheck: "false", maxlength: "32", required: true });
  const step = form(async () => {
    const value = code.value.trim();
    if (!value) throw { message: t("tf.emptyCode"), field: "code" };
    let out;
    try {
      out = await api("POST", "/auth/login/two-factor", { body: { challenge, code: value } });
    } catch (e) {
      code.select();
      // the step expired, was used or voided: start over from the password
      if (e.status === 401) renderSignIn(box, { onSignedIn, notice: e.message });
      throw e;
    }
    await onSignedIn(out.user);
  },
  h("h2", {}, t("tf.stepTitle")),
  h("p", { class: "muted" }, t("tf.stepHint")),
  field(t("tf.code"), code),
  h("div", { class: "row between" },
    h("button", { type: "submit", class: "primary" }, t("tf.confirm")), backLink(box, onSignedIn)));
  step.id = "two-factor-form";
  clear(box, step);
  code.focus();
}

async function renderForcedSetup(box, challenge, onSignedIn) {
  const setup = await api("POST", "/auth/login/two-factor/setup", { body: { challenge } });
  const code = h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric",
    maxlength: "8", required: true });
  const step = form(async () => {
    const value = code.value.trim();
    if (!value) throw { message: t("tf.emptyCode"), field: "code" };
    let out;
    try {
      out = await api("POST", "/auth/login/two-factor/enable", { body: { challenge, code: value } });
    } catch (e) {
      if (e.status === 401) renderSignIn(box, { onSignedIn, notice: e.message });
      throw e;
    }
    clear(box, recoveryCodes(out.recovery_codes, () => onSignedIn(out.user)));
    box.querySelector("button")?.focus();
  },
  h("h2", {}, t("tf.setupTitle")),
  h("p", { class: "muted" }, t("tf.setupRequired")),
  qrImage(setup.qr_svg),
  h("p", { class: "muted small" }, t("tf.secret"), " ", h("code", { class: "secret" }, setup.secret)),
  field(t("tf.code"), code),
  h("div", { class: "row between" },
    h("button", { type: "submit", class: "primary" }, t("tf.confirm")), backLink(box, onSignedIn)));
  step.id = "two-factor-setup-form";
  clear(box, step);
  code.focus();
}

function renderForgot(box, email, onSignedIn) {
  const input = h("input", { name: "email", type: "email", autocomplete: "username", value: email,
    required: true, autocapitalize: "none", spellcheck: "false" });
  const done = h("p", { class: "notice", role: "status", hidden: true, id: "forgot-sent" });
  const el = form(async () => {
    const value = input.value.trim();
    if (!value) throw { message: t("signin.emptyEmail"), field: "email" };
    await api("POST", "/auth/forgot", { body: { email: value } });
    done.textContent = t("forgot.sent");
    done.hidden = false;
  },
  h("h2", {}, t("forgot.title")),
  h("p", { class: "muted" }, t("forgot.hint")),
  field(t("signin.email"), input),
  done,
  h("div", { class: "row between" },
    h("button", { type: "submit", class: "primary" }, t("forgot.submit")), backLink(box, onSignedIn)));
  el.id = "forgot-form";
  clear(box, el);
  input.focus();
}
