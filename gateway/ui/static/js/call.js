// Click-to-call: POST /api/v1/calls with a client, lead, deal or number; 202 = dialling.
import { api } from "./api.js";
import { h, showError, clearErrors, toast } from "./dom.js";
import { t } from "./i18n.js";

export async function startCall(target) {
  return api("POST", "/calls", { body: target });
}

/** A "Call" button for {client_id|lead_id|deal_id|number}; errors appear beside it. */
export function callButton(target, label = t("call.button")) {
  const err = h("span", { class: "field-error inline", role: "alert" });
  const btn = h("button", {
    type: "button",
    class: "call small",
    title: target.number || "",
    "aria-label": target.number ? `${t("call.button")} ${target.number}` : label,
    onclick: async () => {
      err.textContent = "";
      btn.disabled = true;
      try {
        await startCall(target);
        toast(t("call.started"), "ok");
      } catch (e) {
        err.textContent = e.message;
        toast(`${t("error")}: ${e.message}`, "error");
      } finally {
        btn.disabled = false;
      }
    },
  }, h("span", { "aria-hidden": "true" }, "☎"), " ", label);
  return h("span", { class: "call-wrap" }, btn, err);
}

/** The dial box in the top bar: any number. */
export function bindDialForm(form) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const number = form.elements.number.value.trim();
    try {
      await startCall({ number });
      toast(t("call.started"), "ok");
      form.reset();
    } catch (e) {
      // The dial box has one field: every refusal (bad number, no PBX, no extension)
      // is shown under it.
      showError(form, { message: e.message, field: "number" });
    }
  });
}
