// Tiny DOM helpers: every text goes through textContent or text nodes only.
import { getLang, t } from "./i18n.js";

/** h("button", {class: "x", onclick: fn}, "text", child) -> element */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const locale = () => (getLang() === "ru" ? "ru-RU" : "en-GB");

export function fmtDate(iso) {
  if (!iso) return t("none");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(locale(), {
    day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

export function fmtMoney(amount, currency = "RUB") {
  if (amount === null || amount === undefined || amount === "") return t("none");
  const n = Number(amount);
  if (Number.isNaN(n)) return String(amount);
  try {
    return n.toLocaleString(locale(), { style: "currency", currency, maximumFractionDigits: 0 });
  } catch {
    return `${n} ${currency}`;
  }
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return t("none");
  const s = Math.max(0, Math.round(Number(seconds)));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

/** A link only for http(s) URLs; anything else is shown as text. */
export function safeLink(url, text) {
  try {
    const u = new URL(url, location.href);
    if (u.protocol === "http:" || u.protocol === "https:") {
      return h("a", { href: u.href, target: "_blank", rel: "noopener noreferrer" }, text);
    }
  } catch {
    /* not a URL */
  }
  return h("span", { class: "muted" }, `${text}: ${url}`);
}

/** Inbound HTML (already sanitized server-side) in a frame that may run nothing. */
export function htmlFrame(html, title) {
  return h("iframe", {
    class: "mail-frame",
    sandbox: "",
    referrerpolicy: "no-referrer",
    title,
    srcdoc: String(html),
  });
}

export function toast(text, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}` }, text);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

/** Show an API error next to the form field it names (or at the form's foot). */
export function showError(form, err) {
  clearErrors(form);
  const named = (name) => (name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null);
  // "custom.size" names its own input; "phones.0" the input "phones".
  const input = err && err.field
    ? named(String(err.field)) || named(String(err.field).split(".")[0]) : null;
  const fold = input ? input.closest("details") : null;
  if (fold) fold.open = true;
  const message = (err && err.message) || String(err);
  let slot = input ? document.getElementById(input.getAttribute("aria-describedby") || "") : null;
  if (input) input.setAttribute("aria-invalid", "true");
  if (!slot) slot = form.querySelector(".form-error");
  if (!slot) {
    slot = h("p", { class: "form-error field-error", role: "alert" });
    form.append(slot);
  }
  slot.textContent = message;
  (input || slot).focus?.();
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

let uid = 0;
/** A labelled form field: returns the wrapper; the control gets `name` and an error slot. */
export function field(label, control) {
  const id = control.id || `f${++uid}`;
  control.id = id;
  control.setAttribute("aria-describedby", `${id}-error`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    h("p", { id: `${id}-error`, class: "field-error", role: "alert" }),
  );
}

export function select(name, options, value) {
  return h(
    "select",
    { name },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
  );
}

/**
 * The collapsible header menu of narrow screens: `toggle` shows/hides `panel` (CSS decides
 * whether it collapses at all); a followed link, Esc, a click elsewhere or a new route close it.
 */
export function bindMenu(toggle, panel) {
  const bar = panel.parentElement;
  const setOpen = (open) => {
    toggle.setAttribute("aria-expanded", String(open));
    bar.classList.toggle("open", open);
  };
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  panel.addEventListener("click", (ev) => {
    if (ev.target.closest("a[href]")) setOpen(false);
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
      setOpen(false);
      toggle.focus();
    }
  });
  document.addEventListener("click", (ev) => {
    if (!bar.contains(ev.target)) setOpen(false);
  });
  window.addEventListener("hashchange", () => setOpen(false));
}
