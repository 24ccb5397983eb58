// Create a client or change one (POST / PATCH /clients): the whole business profile, tags,
// custom fields (an input by type) and, for a new company, its first contact person.  The
// API's field errors are shown under the field they name and the form stays open.
import { api } from "./api.js";
import { field, h, select, toast } from "./dom.js";
import { t } from "./i18n.js";
import { openForm } from "./modal.js";
import { activeFields, fieldLabel, statusOptions } from "./profile.js";
import { state } from "./state.js";

/** "a, b; c\nd" -> ["a", "b", "c", "d"]: several phones or emails in one box. */
export function splitList(text) {
  return String(text || "").split(/[,;\n]+/).map((s) => s.trim()).filter(Boolean);
}

// Text fields of the profile: [name, label key, max length, only for ("company"|"person"|"")].
const TEXTS = [
  ["full_name", "cp.fullName", 500, "company"],
  ["kpp", "cp.kpp", 9, "company"],
  ["ogrn", "cp.ogrn", 15, "company"],
  ["website", "cp.website", 300, ""],
  ["legal_address", "cp.legalAddress", 2000, "company"],
  ["actual_address", "cp.actualAddress", 2000, ""],
  ["city", "cp.city", 100, ""],
  ["region", "cp.region", 100, ""],
  ["industry", "cp.industry", 200, "company"],
  ["activity", "cp.activity", 300, "company"],
  ["source", "cp.source", 100, ""],
];

/** Admins and supervisors pick an owner among the users they can see; managers own their own. */
function ownerControl(current) {
  if (!state.me || !["admin", "supervisor"].includes(state.me.role) || state.users.size < 2) return null;
  const options = [...state.users].map(([id, name]) => [String(id), name]);
  if (current && !state.users.has(current)) options.push([String(current), `#${current}`]);
  return select("owner_id", options, String(current ?? state.me.id));
}

/** A field shown for one kind of client only (`only` "" = both). */
function kindField(only, el) {
  if (only) el.dataset.only = only;
  return el;
}

/** The input of one custom field, by its type; `value` the client's current value. */
export function customInput(f, value) {
  const name = `custom.${f.key}`;
  if (f.type === "choice") {
    return select(name, [["", t("none")], ...f.options.map((o) => [o, o])], value ?? "");
  }
  if (f.type === "multi") {
    const have = new Set(Array.isArray(value) ? value : []);
    return h("div", { class: "checks", role: "group", name, id: `cf-${f.key}` },
      f.options.map((o) => h("label", { class: "check" },
        h("input", { type: "checkbox", name, value: o, checked: have.has(o) }), " ", o)));
  }
  const type = { number: "number", date: "date" }[f.type] || "text";
  return h("input", { name, type, value: value ?? "", step: f.type === "number" ? "any" : null,
    maxlength: f.type === "text" ? 2000 : null });
}

/** The values of the custom inputs in `form`: {key: value} ("" or [] when empty). */
export function customValues(form, fields) {
  const out = {};
  for (const f of fields) {
    const name = `custom.${f.key}`;
    if (f.type === "multi") {
      out[f.key] = [...form.querySelectorAll(`input[name="${CSS.escape(name)}"]:checked`)].map((i) => i.value);
    } else {
      const el = form.elements.namedItem(name);
      out[f.key] = el ? el.value.trim() : "";
    }
  }
  return out;
}

/** A search box for the parent company: typing lists companies; the choice keeps its id. */
function parentPicker(c) {
  const list = h("datalist", { id: "parent-options" });
  const shown = c.parent ? `${c.parent.name || ""} #${c.parent.id}` : "";
  const input = h("input", { name: "parent", list: "parent-options", value: shown, autocomplete: "off",
    placeholder: t("cp.parentHint") });
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (q.length < 2 || /#\d+$/.test(q)) return;
    timer = setTimeout(async () => {
      try {
        const page = await api("GET", "/clients", { query: { q, kind: "company", limit: 10 } });
        list.replaceChildren(...page.items.filter((x) => x.id !== c.id)
          .map((x) => h("option", { value: `${x.name} #${x.id}` })));
      } catch {
        /* suggestions are a nicety */
      }
    }, 250);
  });
  return [input, list];
}

function parentId(text) {
  const m = String(text || "").trim().match(/#(\d+)$/);
  return m ? Number(m[1]) : null;
}

/**
 * openClientForm(null, done) creates a client; openClientForm(client, done) changes it.
 * `done(client)` gets the API's answer.  The statuses and custom fields come from
 * profile.js (loaded by the clients views before this opens).
 */
export function openClientForm(client, done) {
  const c = client || { kind: "company", status: "cold", phones: [], emails: [], tags: [],
    custom: {} };
  const kind = select("kind", [["company", t("leads.company")], ["person", t("leads.person")]], c.kind);
  const owner = ownerControl(c.owner_id);
  const known = (list) => (list.length ? h("p", { class: "muted small" }, list.join(", ")) : null);
  const fields = activeFields();
  const [parentInput, parentList] = parentPicker(c);
  const innField = field(t("clients.inn"),
    h("input", { name: "inn", value: c.inn || "", inputmode: "numeric", maxlength: 12, autocomplete: "off" }));
  const main = [
    field(t("leads.kind"), kind),
    field(t("clients.nameLabel"), h("input", { name: "name", value: c.name || "", required: true, maxlength: 300 })),
    kindField("company", innField),
    field(t("clients.status"), select("status", statusOptions(c.status), c.status)),
    owner ? field(t("clients.owner"), owner) : null,
    field(t(client ? "clients.addPhones" : "clients.phonesList"),
      h("input", { name: "phones", type: "tel", inputmode: "tel", autocomplete: "off" })),
    known(c.phones),
    field(t(client ? "clients.addEmails" : "clients.emailsList"),
      h("input", { name: "emails", type: "text", inputmode: "email", autocomplete: "off" })),
    known(c.emails),
    field(t("cp.tags"), h("input", { name: "tags", value: (c.tags || []).join(", "), autocomplete: "off" })),
    field(t("clients.segment"), h("input", { name: "segment", value: c.segment || "", maxlength: 100 })),
  ];
  const requisites = [
    ...TEXTS.map(([name, key, max, only]) => kindField(only, field(t(key),
      h("input", { name, value: c[name] || "", maxlength: max, autocomplete: "off",
        type: name === "website" ? "url" : "text" })))),
    kindField("company", field(t("cp.headcount"),
      h("input", { name: "headcount", type: "number", min: 0, step: 1, value: c.headcount ?? "" }))),
    kindField("company", field(t("cp.revenue"),
      h("input", { name: "revenue", type: "number", min: 0, step: "0.01", value: c.revenue ?? "" }))),
    kindField("company", field(t("cp.parent"), parentInput)),
    parentList,
    kindField("person", field(t("cp.birthday"),
      h("input", { name: "birthday", type: "date", value: c.birthday || "" }))),
  ];
  const custom = fields.map((f) => field(`${fieldLabel(f)}${f.required ? " *" : ""}`,
    customInput(f, (c.custom || {})[f.key])));
  const firstContact = client ? null : kindField("company", h("fieldset", { class: "group" },
    h("legend", {}, t("cp.firstContact")), h("div", { class: "cols" },
      field(t("cp.personName"), h("input", { name: "person_name", maxlength: 300, autocomplete: "off" })),
      field(t("cp.position"), h("input", { name: "person_position", maxlength: 200 })),
      field(t("cp.personPhone"), h("input", { name: "person_phone", type: "tel", inputmode: "tel" })),
      field(t("cp.personEmail"), h("input", { name: "person_email", inputmode: "email" })))));
  const body = [
    ...main,
    h("details", { class: "group", open: Boolean(client) }, h("summary", {}, t("cp.requisites")),
      h("div", { class: "cols" }, requisites)),
    custom.length
      ? h("fieldset", { class: "group" }, h("legend", {}, t("cp.custom")), h("div", { class: "cols" }, custom))
      : null,
    firstContact,
    field(t("clients.notes"), h("textarea", { name: "notes", rows: 3, maxlength: 10000 }, c.notes || "")),
  ];
  let form = null;
  form = openForm(t(client ? "clients.editTitle" : "clients.newTitle"), body, async (v) => {
    const values = { ...v, custom: customValues(form, fields), parent_id: parentId(v.parent) };
    const payload = client ? changes(client, values) : created(values);
    const out = client
      ? await api("PATCH", `/clients/${client.id}`, { body: payload })
      : await api("POST", "/clients", { body: payload });
    if (!client && values.kind === "company" && (v.person_name || "").trim()) {
      try {
        await api("POST", `/clients/${out.id}/contacts`, { body: {
          name: v.person_name.trim(), position: v.person_position.trim() || null, is_primary: true,
          phones: splitList(v.person_phone), emails: splitList(v.person_email) } });
      } catch (e) {
        toast(`${t("cp.contactFailed")}: ${e.message}`, "error");
      }
    }
    toast(client ? t("clients.saved") : t("clients.created", { name: out.name }), "ok");
    await done(out);
  }, client ? t("save") : t("clients.create"));
  form.id = client ? "client-edit-form" : "client-new-form";
  form.classList.add("client-form");
  const showKind = () => {
    for (const el of form.querySelectorAll("[data-only]")) el.hidden = el.dataset.only !== kind.value;
  };
  kind.addEventListener("change", showKind);
  showKind();
  return form;
}

function num(text) {
  const s = String(text ?? "").trim().replace(/\s+/g, "").replace(",", ".");
  return s === "" ? null : s;
}

/** The profile fields that apply to `kind`, from the form's values. */
function profileOf(v) {
  const out = {};
  for (const [name, , , only] of TEXTS) {
    if (!only || only === v.kind) out[name] = (v[name] || "").trim();
  }
  if (v.kind === "company") {
    out.inn = (v.inn || "").trim();
    const hc = num(v.headcount);
    out.headcount = hc === null ? null : Number(hc);
    out.revenue = num(v.revenue);
    out.parent_id = v.parent_id;
    out.birthday = "";
  } else {
    out.kpp = "";
    out.parent_id = null;
    out.birthday = v.birthday || "";
  }
  return out;
}

function created(v) {
  const body = { kind: v.kind, name: v.name.trim(), status: v.status, phones: splitList(v.phones),
    emails: splitList(v.emails), tags: splitList(v.tags), custom: {} };
  for (const [k, val] of Object.entries(profileOf(v))) {
    if (val !== "" && val !== null) body[k] = val;
  }
  for (const [k, val] of Object.entries(v.custom)) {
    if (val !== "" && !(Array.isArray(val) && !val.length)) body.custom[k] = val;
  }
  if (v.segment.trim()) body.segment = v.segment.trim();
  if (v.notes.trim()) body.notes = v.notes;
  if (v.owner_id) body.owner_id = Number(v.owner_id);
  return body;
}

const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Only what changed; phones and emails typed here are added to the client's own. */
function changes(c, v) {
  const body = {};
  if (v.kind !== c.kind) body.kind = v.kind;
  if (v.name.trim() !== c.name) body.name = v.name.trim();
  for (const [k, val] of Object.entries(profileOf(v))) {
    const before = c[k] ?? (k === "kpp" ? "" : null);
    const now = val === "" ? (k === "kpp" ? "" : null) : val;
    if (k === "headcount" || k === "parent_id") {
      if (!same(now, before)) body[k] = now;
    } else if (k === "revenue") {
      if (!same(now === null ? null : Number(now), before === null ? null : Number(before))) body[k] = now;
    } else if (!same(now, before)) {
      body[k] = now;
    }
  }
  if (v.segment.trim() !== (c.segment || "")) body.segment = v.segment.trim() || null;
  if (v.status !== c.status) body.status = v.status;
  if (v.notes !== (c.notes || "")) body.notes = v.notes;
  if (v.owner_id && Number(v.owner_id) !== c.owner_id) body.owner_id = Number(v.owner_id);
  const tags = splitList(v.tags);
  if (!same(tags, c.tags || [])) body.tags = tags;
  const custom = {};
  for (const [k, val] of Object.entries(v.custom)) {
    const empty = val === "" || (Array.isArray(val) && !val.length);
    const before = (c.custom || {})[k];
    if (empty && before !== undefined) custom[k] = null;
    else if (!empty && String(before ?? "") !== String(val)) custom[k] = val;
  }
  if (Object.keys(custom).length) body.custom = custom;
  const phones = splitList(v.phones);
  const emails = splitList(v.emails);
  if (phones.length) body.phones = phones;
  if (emails.length) body.emails = emails;
  return body;
}
