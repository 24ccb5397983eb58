// The page behind an invitation or a reset link (/ui/set-password?token=...): a new
// password twice, POST /auth/set-password; then the sign-in page, with the email filled.
import { api } from "./api.js";
import { clear, clearErrors, field, h, showError } from "./dom.js";
import { addStrings, t } from "./i18n.js";
import { stepError } from "./signin.js";

addStrings({
  ru: {
    "setpw.title": "Задайте пароль",
    "setpw.hint": "Не короче 10 символов; не используйте распространённые пароли.",
    "setpw.password": "Новый пароль", "setpw.repeat": "Повторите пароль",
    "setpw.submit": "Сохранить пароль", "setpw.mismatch": "Пароли не совпадают",
    "setpw.empty": "Введите пароль",
    "setpw.noToken": "В ссылке нет ключа. Откройте ссылку из письма целиком или запросите новую.",
    "setpw.done": "Пароль задан. Войдите с новым паролем.",
  },
  en: {
    "setpw.title": "Set your password",
    "setpw.hint": "At least 10 characters; avoid common passwords.",
    "setpw.password": "New password", "setpw.repeat": "Repeat the password",
    "setpw.submit": "Save the password", "setpw.mismatch": "The passwords differ",
    "setpw.empty": "Enter a password",
    "setpw.noToken": "The link has no key. Open the whole link from the email or ask for a new one.",
    "setpw.done": "Your password is set. Sign in with it.",
  },
});

/** `onDone(email, notice)` shows the sign-in page (email may be "" if not answered). */
export function renderSetPassword(box, token, onDone) {
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true });
  const repeat = h("input", { name: "repeat", type: "password", autocomplete: "new-password", required: true });
  const el = h("form", { novalidate: true, id: "set-password-form" },
    h("h2", {}, t("setpw.title")),
    h("p", { class: "muted" }, t("setpw.hint")),
    field(t("setpw.password"), password),
    field(t("setpw.repeat"), repeat),
    h("p", { class: "form-error field-error", role: "alert" }),
    h("div", { class: "row between" },
      h("button", { type: "submit", class: "primary", disabled: !token }, t("setpw.submit")),
      h("a", { href: "/ui/", class: "link" }, t("signin.back"))));
  el.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(el);
    if (!password.value) return showError(el, { message: t("setpw.empty"), field: "password" });
    if (password.value !== repeat.value) return showError(el, { message: t("setpw.mismatch"), field: "repeat" });
    const button = el.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const out = await api("POST", "/auth/set-password", { body: { token, password: password.value } });
      onDone((out && (out.email || out.user?.email)) || "", t("setpw.done"));
    } catch (e) {
      // a bad token is the link's fault, not the password's: say it at the form's foot
      showError(el, e.field === "token" ? { message: e.message } : stepError(e));
    } finally {
      button.disabled = !token;
    }
  });
  clear(box, el, token ? null : h("p", { class: "field-error", role: "alert" }, t("setpw.noToken")));
  password.focus();
}
