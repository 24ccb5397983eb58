// Segments: the list with live counts; a segment's page: manual (clients picked through
// the search) or by rules (field / operator / value rows in "all" / "any" groups, with a
// live count), its managers, their strategy and a rebalance with its progress.
import { api } from "./api.js";
import { clear, field, h, select, toast } from "./dom.js";
import { addStrings, getLang, t } from "./i18n.js";
import { ownerName, state } from "./state.js";

addStrings({
  ru: {
    "nav.segments": "Сегменты",
    "seg.title": "Сегменты", "seg.new": "Новый сегмент", "seg.name": "Название",
    "seg.description": "Описание", "seg.kind": "Вид", "seg.kind.manual": "Ручной (выбранные клиенты)",
    "seg.kind.rule": "По правилам", "seg.count": "Клиентов", "seg.managers": "Менеджеры",
    "seg.strategy": "Распределение", "seg.strategy.round_robin": "по очереди",
    "seg.strategy.least_loaded": "наименее загруженному", "seg.back": "← Все сегменты",
    "seg.save": "Сохранить сегмент", "seg.saved": "Сегмент сохранён", "seg.delete": "Удалить сегмент",
    "seg.deleteConfirm": "Удалить сегмент «{name}»? Клиенты останутся.", "seg.deleted": "Сегмент удалён",
    "seg.rules": "Правила", "seg.all": "все условия", "seg.any": "любое из условий",
    "seg.match": "Клиент подходит, если выполнены", "seg.addCond": "+ условие", "seg.addGroup": "+ группа",
    "seg.remove": "Убрать", "seg.field": "Поле", "seg.op": "Операция", "seg.value": "Значение",
    "seg.live": "Сейчас подходит клиентов: {n}", "seg.liveCapped": "Сейчас подходит клиентов: {n} и больше",
    "seg.members": "Клиенты сегмента", "seg.pick": "Добавить клиентов: поиск", "seg.find": "Найти",
    "seg.add": "Добавить", "seg.noManagers": "Менеджеры не назначены",
    "seg.assign": "Назначить", "seg.rebalance": "Перераспределить всех клиентов сегмента",
    "seg.assigned": "Менеджеры назначены", "seg.progress": "Перераспределение: {moved} из {total}",
    "seg.progressDone": "Перераспределение завершено: передано {moved}",
    "seg.pending": "Будут добавлены: {add}, убраны: {remove}",
    "seg.yes": "есть", "seg.no": "нет", "seg.inHint": "через запятую",
    "op.eq": "равно", "op.ne": "не равно", "op.in": "одно из", "op.contains": "содержит",
    "op.gte": "не меньше", "op.lte": "не больше", "op.exists": "заполнено",
    "clients.allSegments": "Все сегменты",
  },
  en: {
    "nav.segments": "Segments",
    "seg.title": "Segments", "seg.new": "New segment", "seg.name": "Name",
    "seg.description": "Description", "seg.kind": "Kind", "seg.kind.manual": "Manual (chosen clients)",
    "seg.kind.rule": "By rules", "seg.count": "Clients", "seg.managers": "Managers",
    "seg.strategy": "Distribution", "seg.strategy.round_robin": "round robin",
    "seg.strategy.least_loaded": "least loaded", "seg.back": "← All segments",
    "seg.save": "Save the segment", "seg.saved": "Segment saved", "seg.delete": "Delete the segment",
    "seg.deleteConfirm": "Delete segment “{name}”? Its clients stay.", "seg.deleted": "Segment deleted",
    "seg.rules": "Rules", "seg.all": "all conditions", "seg.any": "any condition",
    "seg.match": "A client matches when it meets", "seg.addCond": "+ condition", "seg.addGroup": "+ group",
    "seg.remove": "Remove", "seg.field": "Field", "seg.op": "Operator", "seg.value": "Value",
    "seg.live": "Clients matching now: {n}", "seg.liveCapped": "Clients matching now: {n} or more",
    "seg.members": "Clients of the segment", "seg.pick": "Add clients: search", "seg.find": "Search",
    "seg.add": "Add", "seg.noManagers": "No managers assigned",
    "seg.assign": "Assign", "seg.rebalance": "Redistribute every client of the segment",
    "seg.assigned": "Managers assigned", "seg.progress": "Redistributing: {moved} of {total}",
    "seg.progressDone": "Redistribution done: {moved} moved",
    "seg.pending": "To add: {add}, to remove: {remove}",
    "seg.yes": "yes", "seg.no": "no", "seg.inHint": "comma-separated",
    "op.eq": "equals", "op.ne": "is not", "op.in": "one of", "op.contains": "contains",
    "op.gte": "at least", "op.lte": "at most", "op.exists": "is filled",
    "clients.allSegments": "All segments",
  },
});

const NUMERIC = new Set(["int", "number", "days", "user"]);
const canEdit = () => state.me && ["admin", "supervisor"].includes(state.me.role);
let catalogue = null;

async function fields() {
  if (!catalogue) catalogue = (await api("GET", "/segments/fields")).items;
  return catalogue;
}

const label = (f) => (getLang() === "ru" ? f.label_ru : f.label_en) || f.field;
const countText = (n, capped) => (capped ? `${n.toLocaleString()}+` : n.toLocaleString());

export async function renderSegments(main) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  let page;
  try {
    page = await api("GET", "/segments");
  } catch (e) {
    clear(main, h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const add = canEdit()
    ? h("a", { class: "button primary", href: "#/segments/new", id: "segment-new" }, t("seg.new"))
    : null;
  const body = page.items.length
    ? h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "segments-table" },
      h("thead", {}, h("tr", {}, ["seg.name", "seg.kind", "seg.count", "seg.managers"]
        .map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, page.items.map((g) => h("tr", { dataset: { segmentId: String(g.id) } },
        h("td", {}, h("a", { href: `#/segments/${g.id}` }, g.name)),
        h("td", {}, t(`seg.kind.${g.kind}`)),
        h("td", { class: "num" }, countText(g.client_count, g.count_capped)),
        h("td", {}, g.manager_ids.length
          ? `${g.manager_ids.map(ownerName).join(", ")} · ${t(`seg.strategy.${g.strategy || "round_robin"}`)}`
          : h("span", { class: "muted" }, t("seg.noManagers"))))))))
    : h("p", { class: "muted empty" }, t("empty"));
  clear(main, h("div", { class: "view-head" }, h("h1", {}, t("seg.title")), add), body);
}

export async function renderSegment(main, id) {
  clear(main, h("p", { class: "muted" }, t("loading")));
  let seg = null;
  let cat;
  try {
    cat = await fields();
    if (id !== "new") seg = await api("GET", `/segments/${id}`);
  } catch (e) {
    clear(main, h("a", { href: "#/segments" }, t("seg.back")),
      h("p", { class: "field-error", role: "alert" }, e.message));
    return;
  }
  const editable = canEdit();
  const name = h("input", { name: "name", value: seg ? seg.name : "", maxlength: 100, required: true });
  const description = h("input", { name: "description", value: seg ? seg.description : "" });
  const kind = select("kind", [["rule", t("seg.kind.rule")], ["manual", t("seg.kind.manual")]],
    seg ? seg.kind : "rule");
  kind.disabled = Boolean(seg);
  const live = h("p", { class: "seg-live", id: "segment-live", "aria-live": "polite" });
  const liveError = h("p", { class: "field-error", role: "alert", id: "segment-rules-error" });
  const rulesBox = h("div", { class: "seg-rules", id: "segment-rules" });
  const editor = new RulesEditor(cat, () => preview());
  const manual = new MemberPicker(seg);
  const manualBox = h("div", { id: "segment-members" });
  const formError = h("p", { class: "form-error field-error", role: "alert" });
  const save = h("button", { type: "submit", class: "primary", id: "segment-save" }, t("seg.save"));
  const form = h("form", { class: "card seg-form", novalidate: true },
    field(t("seg.name"), name), field(t("seg.description"), description), field(t("seg.kind"), kind),
    h("section", { class: "seg-rule-part" }, h("h2", {}, t("seg.rules")), rulesBox, live, liveError),
    h("section", { class: "seg-manual-part" }, h("h2", {}, t("seg.members")), manualBox),
    formError, editable ? h("div", { class: "row end" }, save) : null);

  let timer = null;
  let seq = 0;
  async function preview() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++seq;
      try {
        const r = await api("POST", "/segments/preview", { body: { rules: editor.value() } });
        if (mine !== seq) return;
        live.textContent = t(r.count_capped ? "seg.liveCapped" : "seg.live", { n: r.count.toLocaleString() });
        liveError.textContent = "";
      } catch (e) {
        if (mine !== seq) return;
        liveError.textContent = e.message;
      }
    }, 250);
  }
  const showKind = () => {
    const rule = kind.value === "rule";
    form.querySelector(".seg-rule-part").hidden = !rule;
    form.querySelector(".seg-manual-part").hidden = rule || !editable && !seg;
    if (rule) preview();
  };
  kind.addEventListener("change", showKind);
  editor.load(seg && seg.rules ? seg.rules : { all: [] });
  clear(rulesBox, editor.el);
  await manual.mount(manualBox, editable);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.textContent = "";
    const body = { name: name.value.trim(), description: description.value.trim() };
    if (kind.value === "rule") body.rules = editor.value();
    else if (!seg) body.client_ids = [...manual.toAdd];
    else {
      body.add_client_ids = [...manual.toAdd];
      body.remove_client_ids = [...manual.toRemove];
    }
    if (!seg) body.kind = kind.value;
    save.disabled = true;
    try {
      const out = seg
        ? await api("PATCH", `/segments/${seg.id}`, { body })
        : await api("POST", "/segments", { body });
      toast(t("seg.saved"), "ok");
      if (!seg) location.hash = `#/segments/${out.id}`;
      else renderSegment(main, seg.id);
    } catch (e) {
      (String(e.field || "").startsWith("rules") ? liveError : formError).textContent = e.message;
    } finally {
      save.disabled = false;
    }
  });

  const parts = [h("a", { href: "#/segments", class: "back" }, t("seg.back")),
    h("h1", { id: "segment-title" }, seg ? seg.name : t("seg.new")),
    seg ? h("p", { class: "muted", id: "segment-count" },
      `${t("seg.count")}: ${countText(seg.client_count, seg.count_capped)}`) : null,
    form];
  if (seg) parts.push(managersCard(seg, editable, () => renderSegment(main, seg.id)));
  if (seg && editable) {
    parts.push(h("div", { class: "row" }, h("button", {
      type: "button", class: "danger", id: "segment-delete",
      onclick: async () => {
        if (!window.confirm(t("seg.deleteConfirm", { name: seg.name }))) return;
        try {
          await api("DELETE", `/segments/${seg.id}`);
          toast(t("seg.deleted"), "ok");
          location.hash = "#/segments";
        } catch (e) {
          toast(e.message, "error");
        }
      },
    }, t("seg.delete"))));
  }
  clear(main, h("div", { class: "segment-page" }, parts));
  if (!editable) for (const el of form.querySelectorAll("input, select, button")) el.disabled = true;
  showKind();
}

/** A rules group: all/any, rows of field/op/value, nested groups (the API's shape). */
class RulesEditor {
  constructor(cat, onChange) {
    this.cat = cat;
    this.byField = new Map(cat.map((f) => [f.field, f]));
    this.onChange = onChange;
    this.el = h("div");
    this.root = null;
  }

  load(rules) {
    this.root = this.group(rules, 0);
    clear(this.el, this.root.el);
  }

  value() {
    return this.root.value();
  }

  group(rules, depth) {
    const mode = rules && rules.any ? "any" : "all";
    const items = (rules && (rules.any || rules.all)) || [];
    const which = select("mode", [["all", t("seg.all")], ["any", t("seg.any")]], mode);
    which.setAttribute("aria-label", t("seg.match"));
    which.addEventListener("change", this.onChange);
    const list = h("div", { class: "seg-items" });
    const children = [];
    const node = {
      el: h("div", { class: depth ? "seg-group nested" : "seg-group" }),
      value: () => ({ [which.value]: children.map((c) => c.value()) }),
    };
    const addChild = (child) => {
      children.push(child);
      const remove = h("button", { type: "button", class: "small seg-remove", "aria-label": t("seg.remove"),
        onclick: () => {
          children.splice(children.indexOf(child), 1);
          wrap.remove();
          this.onChange();
        } }, "×");
      const wrap = h("div", { class: "seg-item" }, child.el, remove);
      list.append(wrap);
    };
    for (const item of items) {
      addChild(item && (item.all || item.any) ? this.group(item, depth + 1) : this.condition(item));
    }
    const tools = h("div", { class: "row" },
      h("button", { type: "button", class: "small seg-add-cond", onclick: () => {
        addChild(this.condition(null));
        this.onChange();
      } }, t("seg.addCond")),
      depth < 4 ? h("button", { type: "button", class: "small seg-add-group", onclick: () => {
        addChild(this.group({ any: [] }, depth + 1));
        this.onChange();
      } }, t("seg.addGroup")) : null);
    clear(node.el, h("div", { class: "row" }, h("span", {}, t("seg.match")), which), list, tools);
    return node;
  }

  condition(cond) {
    const first = this.cat[0].field;
    const fieldSel = select("field", this.cat.map((f) => [f.field, label(f)]), cond ? cond.field : first);
    fieldSel.setAttribute("aria-label", t("seg.field"));
    const opSel = h("select", { name: "op", "aria-label": t("seg.op") });
    const valueBox = h("span", { class: "seg-value" });
    let input = null;
    const el = h("div", { class: "seg-cond" }, fieldSel, opSel, valueBox);
    const spec = () => this.byField.get(fieldSel.value) || this.cat[0];
    const fillOps = (wanted) => {
      const ops = spec().ops;
      clear(opSel, ops.map((o) => h("option", { value: o, selected: o === wanted }, t(`op.${o}`))));
    };
    const fillValue = (value) => {
      const f = spec();
      if (opSel.value === "exists") {
        input = select("value", [["true", t("seg.yes")], ["false", t("seg.no")]],
          value === false ? "false" : "true");
      } else if (f.type === "user" && opSel.value !== "in") {
        input = select("value", [...state.users.keys()].map((id) => [String(id), ownerName(id)]),
          value === undefined || value === null ? undefined : String(value));
      } else {
        const shown = Array.isArray(value) ? value.join(", ") : value ?? "";
        input = h("input", { name: "value", value: String(shown),
          type: NUMERIC.has(f.type) && opSel.value !== "in" ? "number" : "text",
          placeholder: opSel.value === "in" ? t("seg.inHint") : "" });
      }
      input.setAttribute("aria-label", t("seg.value"));
      input.addEventListener("input", this.onChange);
      input.addEventListener("change", this.onChange);
      clear(valueBox, input);
    };
    fieldSel.addEventListener("change", () => {
      fillOps();
      fillValue();
      this.onChange();
    });
    opSel.addEventListener("change", () => {
      fillValue();
      this.onChange();
    });
    fillOps(cond ? cond.op : undefined);
    fillValue(cond ? cond.value : undefined);
    const convert = (raw) => {
      const s = String(raw).trim();
      if (NUMERIC.has(spec().type) && s !== "" && !Number.isNaN(Number(s))) return Number(s);
      return s;
    };
    return {
      el,
      value: () => {
        const op = opSel.value;
        const out = { field: fieldSel.value, op };
        if (op === "exists") out.value = input.value === "true";
        else if (op === "in") out.value = input.value.split(",").map((v) => v.trim()).filter(Boolean).map(convert);
        else out.value = convert(input.value);
        return out;
      },
    };
  }
}

/** A manual segment's clients: the current ones (removable) and a search to add more. */
class MemberPicker {
  constructor(seg) {
    this.seg = seg;
    this.toAdd = new Set();
    this.toRemove = new Set();
  }

  async mount(box, editable) {
    this.box = box;
    const members = h("ul", { class: "plain seg-members", id: "segment-member-list" });
    const pending = h("p", { class: "muted small", id: "segment-pending" });
    this.pending = pending;
    if (this.seg) {
      try {
        const page = await api("GET", `/segments/${this.seg.id}/clients`, { query: { limit: 100 } });
        for (const c of page.items) members.append(this.memberRow(c, editable && this.seg.kind === "manual"));
      } catch (e) {
        members.append(h("li", { class: "field-error" }, e.message));
      }
    }
    this.members = members;
    const q = h("input", { name: "pick", type: "search" });
    const results = h("ul", { class: "plain seg-results", id: "segment-search-results" });
    const find = h("button", { type: "button", class: "small", id: "segment-find", onclick: async () => {
      const text = q.value.trim();
      if (!text) return;
      try {
        const page = await api("GET", "/clients", { query: { q: text, limit: 20 } });
        clear(results, page.items.map((c) => h("li", {}, `${c.name} `,
          h("button", { type: "button", class: "small", "data-client-id": String(c.id), onclick: (ev) => {
            this.toRemove.delete(c.id);
            this.toAdd.add(c.id);
            members.append(this.memberRow(c, true));
            ev.currentTarget.closest("li").remove();
            this.showPending();
          } }, t("seg.add")))));
      } catch (e) {
        clear(results, h("li", { class: "field-error" }, e.message));
      }
    } }, t("seg.find"));
    q.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        find.click();
      }
    });
    clear(box, members, pending,
      editable && (!this.seg || this.seg.kind === "manual")
        ? h("div", { class: "filters" }, field(t("seg.pick"), q), find) : null,
      results);
  }

  memberRow(c, removable) {
    const li = h("li", { dataset: { clientId: String(c.id) } },
      h("a", { href: `#/clients/${c.id}` }, c.name), " ",
      h("span", { class: "muted small" }, ownerName(c.owner_id)), " ",
      removable ? h("button", { type: "button", class: "small", onclick: () => {
        if (this.toAdd.has(c.id)) this.toAdd.delete(c.id);
        else this.toRemove.add(c.id);
        li.remove();
        this.showPending();
      } }, t("seg.remove")) : null);
    return li;
  }

  showPending() {
    this.pending.textContent = this.toAdd.size || this.toRemove.size
      ? t("seg.pending", { add: this.toAdd.size, remove: this.toRemove.size }) : "";
  }
}

function managersCard(seg, editable, reload) {
  const chosen = new Set(seg.manager_ids);
  const boxes = [...state.users.keys()].map((id) => h("label", { class: "seg-manager" },
    h("input", { type: "checkbox", name: "user_ids", value: String(id), checked: chosen.has(id),
      disabled: !editable }), " ", ownerName(id)));
  if (!boxes.length) boxes.push(h("p", { class: "muted" }, seg.manager_ids.map(ownerName).join(", ") || t("seg.noManagers")));
  const strategy = select("strategy", [["round_robin", t("seg.strategy.round_robin")],
    ["least_loaded", t("seg.strategy.least_loaded")]], seg.strategy || "round_robin");
  strategy.disabled = !editable;
  const rebalance = h("input", { type: "checkbox", name: "rebalance", id: "segment-rebalance", disabled: !editable });
  const progress = h("p", { class: "muted", id: "segment-progress", "aria-live": "polite" });
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h("form", { class: "card seg-managers", id: "segment-managers", novalidate: true },
    h("h2", {}, t("seg.managers")), h("div", { class: "seg-manager-list" }, boxes),
    field(t("seg.strategy"), strategy),
    h("label", { class: "seg-manager" }, rebalance, " ", t("seg.rebalance")),
    error, progress,
    editable ? h("div", { class: "row end" }, h("button", { type: "submit", class: "primary",
      id: "segment-assign" }, t("seg.assign"))) : null);
  const showProgress = (p) => {
    if (!p) return;
    progress.textContent = p.state === "running"
      ? t("seg.progress", { moved: p.moved, total: p.to_move })
      : t("seg.progressDone", { moved: p.moved });
  };
  const poll = async () => {
    if (!document.body.contains(form)) return;
    try {
      const fresh = await api("GET", `/segments/${seg.id}`);
      showProgress(fresh.rebalance);
      if (fresh.rebalance && fresh.rebalance.state === "running") setTimeout(poll, 800);
    } catch {
      /* the next render shows it */
    }
  };
  showProgress(seg.rebalance);
  if (seg.rebalance && seg.rebalance.state === "running") setTimeout(poll, 800);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const ids = [...form.querySelectorAll("input[name=user_ids]:checked")].map((i) => Number(i.value));
    try {
      const out = await api("PUT", `/segments/${seg.id}/managers`, {
        body: { user_ids: ids, strategy: strategy.value, rebalance: rebalance.checked } });
      toast(t("seg.assigned"), "ok");
      if (out.rebalance && out.rebalance.state === "running") {
        showProgress(out.rebalance);
        setTimeout(poll, 500);
      } else if (!rebalance.checked) {
        reload();
      } else {
        showProgress(out.rebalance);
      }
    } catch (e) {
      error.textContent = e.message;
    }
  });
  return form;
}

/** The segment filter of the clients list: a select of every segment ("" for all),
 *  returned at once and filled when the segments arrive. */
export function segmentSelect(value) {
  const el = h("select", { name: "segment", id: "clients-segment" },
    h("option", { value: "" }, t("clients.allSegments")));
  api("GET", "/segments").then((page) => {
    for (const g of page.items) {
      el.append(h("option", { value: String(g.id), selected: String(g.id) === String(value || "") }, g.name));
    }
  }).catch(() => {
    /* the list works without the filter */
  });
  return el;
}
