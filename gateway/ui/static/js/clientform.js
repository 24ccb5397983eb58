// Create a client or change one (POST / PATCH /clients): the API's field errors are shown
// under the field they name and the form stays open.
import { api } from "./api.js";
import { field, h, select, toast } from "./dom.js";
import { t } from "./i18n.js";
import { openForm } from "./modal.js";
import { state } from "./state.js";

const STATUSES = ["cold", "thinking", "ready", "active", "regular", "lost"];

/** "a, b; c\nd" -> ["a", "b", "c", "d"]: several phones or emails in one box. */
export function splitList(text) {
  return String(text || "").split(/[,;\n]+/).map((s) => s.trim()).filter(Boolean);
}

/** Admins and supervisors pick an owner among the users they can see; managers own their own. */
function ownerControl(current) {
  if (!state.me || !["admin", "supervisor"].includes(state.me.role) || state.users.size < 2) return null;
  const options = [...state.users].map(([id, name]) => [String(id), name]);
  if (current && !state.users.has(current)) options.push([String(current), `#${current}`]);
  return select("owner_id", options, String(current ?? state.me.id));
}

/**
 * openClientForm(null, done) creates a client; openClientForm(client, done) changes it.
 * `done(client)` gets the API's answer.
 */
export function openClientForm(client, done) {
  const c = client || { kind: "company", status: "cold", phones: [], emails: [] };
  const kind = select("kind", [["company", t("leads.company")], ["person", t("leads.person")]], c.kind);
  const innField = field(t("clients.inn"),
    h("input", { name: "inn", value: c.inn || "", inputmode: "numeric", maxlength: 12, autocomplete: "off" }));
  const showInn = () => { innField.hidden = kind.value !== "company"; };
  kind.addEventListener("change", showInn);
  showInn();
  const owner = ownerControl(c.owner_id);
  const known = (list) => (list.length ? h("p", { class: "muted small" }, list.join(", ")) : null);
  const fields = [
    field(t("leads.kind"), kind),
    field(t("clients.nameLabel"), h("input", { name: "name", value: c.name || "", required: true, maxlength: 300 })),
    innField,
    field(t(client ? "clients.addPhones" : "clients.phonesList"),
      h("input", { name: "phones", type: "tel", inputmode: "tel", autocomplete: "off" })),
    known(c.phones),
    field(t(client ? "clients.addEmails" : "clients.emailsList"),
      h("input", { name: "emails", type: "text", inputmode: "email", autocomplete: "off" })),
    known(c.emails),
    field(t("clients.segment"), h("input", { name: "segment", value: c.segment || "", maxlength: 100 })),
    field(t("clients.status"), select("status", STATUSES.map((s) => [s, t(`cstatus.${s}`)]), c.status)),
    owner ? field(t("clients.owner"), owner) : null,
    field(t("clients.notes"), h("textarea", { name: "notes", rows: 3, maxlength: 10000 }, c.notes || "")),
  ];
  const form = openForm(t(client ? "clients.editTitle" : "clients.newTitle"), fields, async (v) => {
    const body = client ? changes(client, v) : created(v);
    const out = client
      ? await api("PATCH", `/clients/${client.id}`, { body })
      : await api("POST", "/clients", { body });
    toast(client ? t("clients.saved") : t("clients.created", { name: out.name }), "ok");
    await done(out);
  }, client ? t("save") : t("clients.create"));
  form.id = client ? "client-edit-form" : "client-new-form";
  return form;
}

function created(v) {
  const body = { kind: v.kind, name: v.name.trim(), status: v.status, phones: splitList(v.phones),
    emails: splitList(v.emails) };
  if (v.kind === "company" && v.inn.trim()) body.inn = v.inn.trim();
  if (v.segment.trim()) body.segment = v.segment.trim();
  if (v.notes.trim()) body.notes = v.notes;
  if (v.owner_id) body.owner_id = Number(v.owner_id);
  return body;
}

/** Only what changed; phones and emails typed here are added to the client's own. */
function changes(c, v) {
  const body = {};
  if (v.kind !== c.kind) body.kind = v.kind;
  if (v.name.trim() !== c.name) body.name = v.name.trim();
  if (v.kind === "company" && v.inn.trim() !== (c.inn || "")) body.inn = v.inn.trim() || null;
  if (v.segment.trim() !== (c.segment || "")) body.segment = v.segment.trim() || null;
  if (v.status !== c.status) body.status = v.status;
  if (v.notes !== (c.notes || "")) body.notes = v.notes;
  if (v.owner_id && Number(v.owner_id) !== c.owner_id) body.owner_id = Number(v.owner_id);
  const phones = splitList(v.phones);
  const emails = splitList(v.emails);
  if (phones.length) body.phones = phones;
  if (emails.length) body.emails = emails;
  return body;
}
