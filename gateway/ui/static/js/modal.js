// One modal <dialog> for small forms (convert, reject): Esc closes, focus is trapped.
import { clear, clearErrors, h, showError } from "./dom.js";
import { t } from "./i18n.js";

/**
 * openForm(title, fields, submit): `fields` are elements (see dom.field); `submit(values)`
 * returns a promise; an ApiError is shown next to the field it names and keeps the form open.
 */
export function openForm(title, fields, submit, submitLabel = t("save")) {
  const dlg = document.getElementById("modal");
  const titleId = "modal-title";
  const form = h(
    "form",
    { method: "dialog", class: "modal-form", novalidate: true },
    h("h2", { id: titleId }, title),
    fields,
    h("p", { class: "form-error field-error", role: "alert" }),
    h(
      "div",
      { class: "row end" },
      h("button", { type: "button", onclick: () => dlg.close() }, t("cancel")),
      h("button", { type: "submit", class: "primary" }, submitLabel),
    ),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const values = Object.fromEntries(new FormData(form).entries());
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await submit(values);
      dlg.close();
    } catch (e) {
      showError(form, e);
    } finally {
      button.disabled = false;
    }
  });
  dlg.setAttribute("aria-labelledby", titleId);
  clear(dlg, form);
  dlg.showModal();
  form.querySelector("input, select, textarea")?.focus();
  return form;
}
