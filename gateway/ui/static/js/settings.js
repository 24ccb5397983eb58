// The admin's settings of the client profile: the statuses list (add, rename, reorder,
// deactivate, delete an unused one) and the custom fields (add, change, deactivate, delete).
import { api } from "./api.js";
import { clear, field, h, select, toast } from "./dom.js";
import { t } from "./i18n.js";
import { openForm } from "./modal.js";
import { fieldLabel, loadProfile, profile } from "./profile.js";

const TYPES = ["text", "number", "date", "choice", "multi"];

export async function renderSettings(main) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  try {
    await loadProfile();
  } catch (e) {
    clear(main, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const again = () => renderSettings(main);
  clear(main,
    h("div", { class: "view-head" }, h("h1", {}, t("set.title"))),
    h("div", { class: "settings" }, statusesCard(again), fieldsCard(again)));
}

async function run(action, again) {
  try {
    await action();
    toast(t("clients.saved"), "ok");
  } catch (e) {
    toast(e.message, "error");
  }
  await again();
}

function statusesCard(again) {
  const rows = profile.statuses;
  // Reorder: swap two neighbours, then number the whole list 10, 20, 30…
  const move = (i, d) => run(async () => {
    const order = [...rows];
    [order[i], order[i + d]] = [order[i + d], order[i]];
    for (const [n, s] of order.entries()) {
      if (s.position !== (n + 1) * 10) {
        await api("PATCH", `/client-statuses/${encodeURIComponent(s.key)}`, { body: { position: (n + 1) * 10 } });
      }
    }
  }, again);
  const path = (s) => `/client-statuses/${encodeURIComponent(s.key)}`;
  const row = (s, i) => h("tr", { dataset: { key: s.key }, class: s.active ? null : "inactive" },
    h("td", {}, h("code", {}, s.key)),
    h("td", {}, s.name_ru, s.active ? null : [" ", h("span", { class: "badge warn" }, t("set.off"))]),
    h("td", {}, s.name_en),
    h("td", { class: "num" }, String(s.clients ?? "")),
    h("td", { class: "actions" }, h("div", { class: "row" },
      h("button", { type: "button", class: "small", disabled: i === 0,
        "aria-label": `${t("set.up")}: ${s.key}`, onclick: () => move(i, -1) }, "↑"),
      h("button", { type: "button", class: "small", disabled: i === rows.length - 1,
        "aria-label": `${t("set.down")}: ${s.key}`, onclick: () => move(i, 1) }, "↓"),
      h("button", { type: "button", class: "small", onclick: () => statusForm(s, again) }, t("set.rename")),
      h("button", { type: "button", class: "small",
        onclick: () => run(() => api("PATCH", path(s), { body: { active: !s.active } }), again) },
      t(s.active ? "set.deactivate" : "set.activate")),
      s.clients ? null : h("button", { type: "button", class: "small danger",
        onclick: () => run(() => api("DELETE", path(s)), again) }, t("cp.remove")))));
  return h("section", { class: "card", "aria-labelledby": "set-statuses" },
    h("div", { class: "row between" }, h("h2", { id: "set-statuses" }, t("set.statuses")),
      h("button", { type: "button", class: "small", id: "status-new", onclick: () => statusForm(null, again) },
        t("set.addStatus"))),
    h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "statuses-table" },
      h("thead", {}, h("tr", {}, ["set.key", "set.nameRu", "set.nameEn", "set.inUse", ""]
        .map((k) => h("th", { scope: "col" }, k ? t(k) : "")))),
      h("tbody", {}, rows.map(row)))));
}

function statusForm(s, again) {
  const form = openForm(t(s ? "set.rename" : "set.addStatus"), [
    s ? null : field(t("set.key"), h("input", { name: "key", required: true, maxlength: 20, pattern: "[a-z][a-z0-9_]*",
      autocomplete: "off" })),
    field(t("set.nameRu"), h("input", { name: "name_ru", value: s ? s.name_ru : "", required: true, maxlength: 100 })),
    field(t("set.nameEn"), h("input", { name: "name_en", value: s ? s.name_en : "", required: true, maxlength: 100 })),
  ], async (v) => {
    if (s) {
      await api("PATCH", `/client-statuses/${encodeURIComponent(s.key)}`, { body: { name_ru: v.name_ru, name_en: v.name_en } });
    } else {
      await api("POST", "/client-statuses", { body: { key: v.key.trim(), name_ru: v.name_ru, name_en: v.name_en } });
    }
    toast(t("clients.saved"), "ok");
    await again();
  }, s ? t("save") : t("cp.add"));
  form.id = "status-form";
}

function fieldsCard(again) {
  return h("section", { class: "card", "aria-labelledby": "set-fields" },
    h("div", { class: "row between" }, h("h2", { id: "set-fields" }, t("set.fields")),
      h("button", { type: "button", class: "small", id: "field-new", onclick: () => fieldForm(null, again) },
        t("set.addField"))),
    h("p", { class: "muted small" }, t("set.typeNote")),
    profile.fields.length ? h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "fields-table" },
      h("thead", {}, h("tr", {}, ["set.key", "set.label", "set.type", "set.options", ""]
        .map((k) => h("th", { scope: "col" }, k ? t(k) : "")))),
      h("tbody", {}, profile.fields.map((f) => h("tr", { dataset: { key: f.key } },
        h("td", {}, h("code", {}, f.key)),
        h("td", {}, fieldLabel(f), f.required ? " *" : "",
          f.active ? null : h("span", { class: "badge warn" }, ` ${t("set.off")}`)),
        h("td", {}, t(`set.t.${f.type}`)),
        h("td", {}, f.options.join(", ")),
        h("td", { class: "actions" }, h("div", { class: "row" },
          h("button", { type: "button", class: "small", onclick: () => fieldForm(f, again) }, t("clients.edit")),
          h("button", { type: "button", class: "small danger",
            onclick: () => run(() => api("DELETE", `/custom-fields/${f.id}`), again) }, t("cp.remove"))))))),
    )) : h("p", { class: "muted" }, t("empty")));
}

function fieldForm(f, again) {
  const type = select("type", TYPES.map((x) => [x, t(`set.t.${x}`)]), f ? f.type : "text");
  const options = field(t("set.optionsHint"),
    h("textarea", { name: "options", rows: 4 }, f ? f.options.join("\n") : ""));
  const showOptions = () => { options.hidden = !["choice", "multi"].includes(type.value); };
  type.addEventListener("change", showOptions);
  showOptions();
  const form = openForm(t(f ? "set.editField" : "set.addField"), [
    f ? null : field(t("set.key"), h("input", { name: "key", required: true, maxlength: 50, autocomplete: "off" })),
    field(t("set.labelRu"), h("input", { name: "label_ru", value: f ? f.label_ru : "", required: true, maxlength: 200 })),
    field(t("set.labelEn"), h("input", { name: "label_en", value: f ? f.label_en : "", maxlength: 200 })),
    field(t("set.type"), type),
    options,
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "required", checked: f ? f.required : false }),
      " ", t("set.required")),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "active", checked: f ? f.active : true }),
      " ", t("set.active")),
  ], async (v) => {
    const body = { label_ru: v.label_ru, label_en: v.label_en, type: v.type,
      required: v.required === "on", active: v.active === "on" };
    if (["choice", "multi"].includes(v.type)) {
      body.options = String(v.options || "").split("\n").map((s) => s.trim()).filter(Boolean);
    }
    if (f) await api("PATCH", `/custom-fields/${f.id}`, { body });
    else await api("POST", "/custom-fields", { body: { key: v.key.trim(), ...body } });
    toast(t("clients.saved"), "ok");
    await again();
  }, f ? t("save") : t("cp.add"));
  form.id = "field-form";
}
