// A company's contact persons on its card: add, change, remove, make one the primary.
// Their phones and emails are normalized by the API like the company's own.
import { api } from "./api.js";
import { callButton } from "./call.js";
import { splitList } from "./clientform.js";
import { field, h, toast } from "./dom.js";
import { t } from "./i18n.js";
import { openForm } from "./modal.js";

/** The "Contact persons" card section of `client`; `reload()` after a change. */
export function contactsSection(client, reload) {
  const people = client.contacts || [];
  return h("section", { class: "contacts", id: "contacts", "aria-labelledby": "contacts-title" },
    h("div", { class: "row between" },
      h("h2", { id: "contacts-title" }, t("cp.contacts")),
      h("button", { type: "button", class: "small", id: "contact-new",
        onclick: () => openContactForm(client, null, reload) }, t("cp.addContact"))),
    people.length
      ? h("ul", { class: "plain people" }, people.map((p) => personItem(client, p, reload)))
      : h("p", { class: "muted" }, t("empty")));
}

function personItem(client, p, reload) {
  return h("li", { class: "person", dataset: { contactId: String(p.id) } },
    h("div", { class: "row between" },
      h("div", {},
        h("strong", {}, p.name),
        p.position ? h("span", { class: "muted" }, ` · ${p.position}`) : null,
        p.is_primary ? [" ", h("span", { class: "badge primary-contact" }, t("cp.primary"))] : null),
      h("div", { class: "row" },
        h("button", { type: "button", class: "small", onclick: () => openContactForm(client, p, reload),
          "aria-label": `${t("clients.edit")}: ${p.name}` }, t("clients.edit")),
        h("button", { type: "button", class: "small danger", onclick: () => remove(p, reload),
          "aria-label": `${t("cp.remove")}: ${p.name}` }, t("cp.remove")))),
    p.phones.map((ph) => h("div", { class: "phone" }, ph, " ", callButton({ number: ph }, t("call.button")))),
    p.emails.map((e) => h("div", {}, h("a", { href: `mailto:${e}` }, e))),
    p.notes ? h("p", { class: "muted small notes" }, p.notes) : null);
}

async function remove(p, reload) {
  if (!window.confirm(t("cp.removeConfirm", { name: p.name }))) return;
  try {
    await api("DELETE", `/contacts/${p.id}`);
    toast(t("cp.removed"), "ok");
    await reload();
  } catch (e) {
    toast(e.message, "error");
  }
}

/** Add a contact person to `client` (p null) or change `p`. */
export function openContactForm(client, p, reload) {
  const c = p || { name: "", position: "", phones: [], emails: [], notes: "", is_primary: !(client.contacts || []).length };
  const form = openForm(t(p ? "cp.editContact" : "cp.addContact"), [
    field(t("cp.personName"), h("input", { name: "name", value: c.name, required: true, maxlength: 300 })),
    field(t("cp.position"), h("input", { name: "position", value: c.position || "", maxlength: 200 })),
    field(t("clients.phonesList"), h("input", { name: "phones", type: "tel", value: c.phones.join(", ") })),
    field(t("clients.emailsList"), h("input", { name: "emails", value: c.emails.join(", ") })),
    field(t("clients.notes"), h("textarea", { name: "notes", rows: 2, maxlength: 10000 }, c.notes || "")),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "is_primary", checked: c.is_primary }),
      " ", t("cp.makePrimary")),
  ], async (v) => {
    const body = { name: v.name.trim(), position: v.position.trim() || null, notes: v.notes,
      is_primary: v.is_primary === "on", phones: splitList(v.phones), emails: splitList(v.emails) };
    if (p) await api("PATCH", `/contacts/${p.id}`, { body });
    else await api("POST", `/clients/${client.id}/contacts`, { body });
    toast(t("clients.saved"), "ok");
    await reload();
  }, p ? t("save") : t("cp.add"));
  form.id = p ? "contact-edit-form" : "contact-new-form";
  return form;
}
