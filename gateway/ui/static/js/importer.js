// The client import wizard: upload an .xlsx or .csv, check what each column means on the
// first rows (and change it), a dry run that writes nothing, the import with a progress
// bar, its report; and the past imports with an undo button.  Admins and supervisors.
import { ApiError, getToken } from "./api.js";
import { clear, fmtDate, h, toast } from "./dom.js";
import { getLang } from "./i18n.js";

const S = {
  ru: {
    title: "Импорт клиентов",
    intro: "Загрузите таблицу Excel (.xlsx) или CSV: строка заголовков найдётся сама, колонки сопоставятся с полями клиента.",
    file: "Файл (.xlsx или .csv)",
    sheet: "Лист",
    owner: "Ответственный для новых клиентов (e-mail, необязательно)",
    preview: "Показать",
    mappingTitle: "Колонки файла",
    mappingHint: "Проверьте, чему соответствует каждая колонка; «не загружать» — колонка пропускается.",
    column: "Колонка",
    sample: "Примеры",
    fieldLabel: "Поле",
    skip: "— не загружать —",
    headerRow: "Строка заголовков: {row}",
    total: "Строк данных: до {n}",
    firstRows: "Первые строки",
    row: "Строка",
    dryRun: "Проверить без записи",
    run: "Импортировать",
    running: "Идёт импорт…",
    checking: "Идёт проверка…",
    progress: "Обработано строк: {rows}",
    progressOf: "Обработано строк: {rows} из {total}",
    dryTitle: "Проверка (ничего не записано)",
    doneTitle: "Импорт завершён",
    failed: "Импорт не выполнен",
    rows: "Строк",
    created: "Создано",
    updated: "Обновлено",
    unchanged: "Без изменений",
    skipped: "Пропущено",
    consentLine: "Согласие на рассылку: записано для {changed} адр., без изменений {unchanged}, не подписано обратно (адрес отписался сам) {kept}",
    errors: "Ошибки",
    value: "Значение",
    error: "Ошибка",
    noErrors: "Ошибок нет",
    more: "Показаны первые {n}",
    history: "Прошлые импорты",
    when: "Когда",
    fileCol: "Файл",
    status: "Статус",
    result: "Итог",
    undo: "Отменить",
    undoConfirm: "Отменить импорт {id}? Созданные им клиенты будут удалены (кроме изменённых с тех пор), добавленное к существующим — убрано.",
    undone: "Импорт {id} отменён: удалено клиентов {n}",
    none: "Импортов пока не было",
    forbidden: "Импорт доступен администраторам и руководителям",
    st_queued: "в очереди", st_running: "идёт", st_done: "готово", st_failed: "ошибка", st_undone: "отменён",
  },
  en: {
    title: "Import clients",
    intro: "Upload an Excel (.xlsx) or CSV file: the header row is found and the columns are matched to client fields by themselves.",
    file: "File (.xlsx or .csv)",
    sheet: "Sheet",
    owner: "Owner of new clients (email, optional)",
    preview: "Preview",
    mappingTitle: "Columns of the file",
    mappingHint: "Check what each column means; “do not import” skips the column.",
    column: "Column",
    sample: "Examples",
    fieldLabel: "Field",
    skip: "— do not import —",
    headerRow: "Header row: {row}",
    total: "Data rows: up to {n}",
    firstRows: "First rows",
    row: "Row",
    dryRun: "Check without writing",
    run: "Import",
    running: "Importing…",
    checking: "Checking…",
    progress: "Rows processed: {rows}",
    progressOf: "Rows processed: {rows} of {total}",
    dryTitle: "Check (nothing written)",
    doneTitle: "Import finished",
    failed: "The import failed",
    rows: "Rows",
    created: "Created",
    updated: "Updated",
    unchanged: "Unchanged",
    skipped: "Skipped",
    consentLine: "Email consent: recorded for {changed} addresses, {unchanged} unchanged, {kept} not resubscribed (the address unsubscribed itself)",
    errors: "Errors",
    value: "Value",
    error: "Error",
    noErrors: "No errors",
    more: "The first {n} are shown",
    history: "Past imports",
    when: "When",
    fileCol: "File",
    status: "Status",
    result: "Result",
    undo: "Undo",
    undoConfirm: "Undo import {id}? The clients it created are removed (except those changed since), what it added to existing clients is taken back.",
    undone: "Import {id} undone: {n} clients removed",
    none: "No imports yet",
    forbidden: "Import is for admins and supervisors",
    st_queued: "queued", st_running: "running", st_done: "done", st_failed: "failed", st_undone: "undone",
  },
};

function tr(key, vars = {}) {
  const text = S[getLang()]?.[key] ?? S.ru[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

const wizard = { file: null, preview: null, fields: null, job: null };

async function call(method, path, form) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, { method, headers, body: form });
  } catch (exc) {
    throw new ApiError(0, `network error: ${exc.message}`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text.slice(0, 300) };
  }
  if (!resp.ok) {
    const message = data && getLang() === "ru" && data.error_ru ? data.error_ru : data && data.error;
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("crm:unauthorized"));
    throw new ApiError(resp.status, message || resp.statusText, data && data.field);
  }
  return data;
}

function fieldLabel(f) {
  return getLang() === "en" ? f.label_en || f.label_ru || f.name : f.label_ru || f.name;
}

export async function renderImport(main) {
  const status = h("p", { id: "import-error", class: "field-error", role: "alert" });
  const fileInput = h("input", {
    id: "import-file", name: "file", type: "file", accept: ".xlsx,.csv,text/csv",
    "aria-describedby": "import-error",
  });
  const owner = h("input", { id: "import-owner", name: "owner", type: "email", autocomplete: "off" });
  const step2 = h("div", { id: "import-step2" });
  const result = h("div", { id: "import-result", "aria-live": "polite" });
  const history = h("section", { class: "card", id: "import-history", "aria-labelledby": "import-history-title" });
  const form = h("form", { class: "card import-upload", id: "import-form", novalidate: true,
    onsubmit: async (ev) => {
      ev.preventDefault();
      status.textContent = "";
      clear(result);
      const file = fileInput.files && fileInput.files[0];
      if (!file) {
        status.textContent = tr("file");
        return;
      }
      wizard.file = file;
      await loadPreview(step2, status, result, owner, null);
    } },
  h("p", { class: "muted" }, tr("intro")),
  h("div", { class: "field" }, h("label", { for: "import-file" }, tr("file")), fileInput),
  h("div", { class: "field" }, h("label", { for: "import-owner" }, tr("owner")), owner),
  status,
  h("button", { type: "submit", class: "primary", id: "import-preview" }, tr("preview")));
  clear(main, h("div", { class: "view-head" }, h("h1", {}, tr("title"))), form, step2, result, history);
  await loadHistory(history);
}

async function loadPreview(step2, status, result, owner, sheet) {
  const body = new FormData();
  body.append("file", wizard.file, wizard.file.name);
  if (sheet) body.append("sheet", sheet);
  clear(step2, h("p", { class: "muted" }, "…"));
  try {
    wizard.preview = await call("POST", "/imports/preview", body);
  } catch (e) {
    clear(step2);
    status.textContent = e.status === 403 ? tr("forbidden") : e.message;
    return;
  }
  renderMapping(step2, status, result, owner);
}

function renderMapping(step2, status, result, owner) {
  const p = wizard.preview;
  const options = [["", tr("skip")], ...p.fields.map((f) => [f.name, fieldLabel(f)])];
  const selects = [];
  const rows = p.columns.map((col) => {
    const sel = h("select", { name: `col-${col.index}`, "aria-label": `${tr("fieldLabel")}: ${col.header}`,
      dataset: { header: col.header } },
    options.map(([v, label]) => h("option", { value: v, selected: v === (col.field || "") }, label)));
    selects.push(sel);
    const samples = p.rows.slice(0, 3).map((r) => r.cells[col.index]).filter(Boolean).join(" · ");
    return h("tr", { dataset: { column: col.header } },
      h("th", { scope: "row" }, col.header),
      h("td", { class: "muted samples" }, samples),
      h("td", {}, sel));
  });
  let sheetPick = null;
  if (p.sheets && p.sheets.length > 1) {
    sheetPick = h("select", { id: "import-sheet", name: "sheet",
      onchange: (ev) => loadPreview(step2, status, result, owner, ev.target.value) },
    p.sheets.map((name) => h("option", { value: name, selected: name === p.sheet }, name)));
  }
  const mapping = () => {
    const columns = {};
    for (const sel of selects) columns[sel.dataset.header] = sel.value || null;
    return JSON.stringify({ columns, header_row: p.header_row });
  };
  const start = async (dry) => {
    status.textContent = "";
    const body = new FormData();
    body.append("file", wizard.file, wizard.file.name);
    if (p.sheet) body.append("sheet", p.sheet);
    body.append("mapping", mapping());
    if (owner.value.trim()) body.append("owner", owner.value.trim());
    if (dry) body.append("dry_run", "true");
    for (const b of step2.querySelectorAll("button")) b.disabled = true;
    try {
      const job = await call("POST", "/imports", body);
      await follow(job.id, dry, result);
    } catch (e) {
      status.textContent = e.message;
    } finally {
      for (const b of step2.querySelectorAll("button")) b.disabled = false;
    }
    if (!dry) await loadHistory(document.getElementById("import-history"));
  };
  const head = p.columns.map((c) => h("th", { scope: "col" }, c.header));
  clear(step2,
    h("section", { class: "card", "aria-labelledby": "import-map-title" },
      h("h2", { id: "import-map-title" }, tr("mappingTitle")),
      h("p", { class: "muted" }, tr("mappingHint"), " ", tr("headerRow", { row: p.header_row }),
        p.total ? ` · ${tr("total", { n: p.total })}` : ""),
      sheetPick ? h("div", { class: "field" }, h("label", { for: "import-sheet" }, tr("sheet")), sheetPick) : null,
      h("div", { class: "table-wrap" },
        h("table", { class: "grid import-map", id: "import-map" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, tr("column")),
            h("th", { scope: "col", class: "samples" }, tr("sample")), h("th", { scope: "col" }, tr("fieldLabel")))),
          h("tbody", {}, rows))),
      h("h3", {}, tr("firstRows")),
      h("div", { class: "table-wrap" },
        h("table", { class: "grid import-rows", id: "import-rows" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, tr("row")), head)),
          h("tbody", {}, p.rows.map((r) => h("tr", {}, h("td", {}, String(r.row)),
            p.columns.map((c) => h("td", {}, r.cells[c.index] || ""))))))),
      h("div", { class: "row wrap" },
        h("button", { type: "button", id: "import-dry", onclick: () => start(true) }, tr("dryRun")),
        h("button", { type: "button", class: "primary", id: "import-run", onclick: () => start(false) }, tr("run")))));
}

async function follow(id, dry, result) {
  const bar = h("progress", { id: "import-progress", max: "100", value: "0" });
  const label = h("p", { class: "muted", id: "import-progress-label" }, tr(dry ? "checking" : "running"));
  clear(result, h("section", { class: "card" }, label, bar));
  for (;;) {
    const job = await call("GET", `/imports/${id}`);
    if (job.total) {
      bar.max = job.total;
      bar.value = Math.min(job.rows, job.total);
      label.textContent = tr("progressOf", { rows: job.rows, total: job.total });
    } else {
      bar.removeAttribute("value");
      label.textContent = tr("progress", { rows: job.rows });
    }
    if (!["queued", "running"].includes(job.status)) {
      renderReport(result, job);
      return job;
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

/** The "Согласие на рассылку" column's outcome, when the file had one. */
function consentLine(c) {
  if (!c || !(c.changed || c.unchanged || c.kept)) return null;
  return h("p", { class: "muted", id: "import-consent" }, tr("consentLine", c));
}

function renderReport(result, job) {
  const r = job.report || {};
  if (job.status === "failed") {
    const err = r.error || {};
    clear(result, h("section", { class: "card", id: "import-report", dataset: { status: "failed" } },
      h("h2", {}, tr("failed")),
      h("p", { class: "field-error", role: "alert" }, getLang() === "ru" && err.error_ru ? err.error_ru : err.error)));
    return;
  }
  const counts = ["rows", "created", "updated", "unchanged", "skipped"];
  const errors = r.errors || [];
  const msg = (e) => (getLang() === "ru" && e.error_ru ? e.error_ru : e.error);
  clear(result, h("section", { class: "card", id: "import-report",
    dataset: { status: job.status, dryRun: String(job.dry_run) } },
  h("h2", {}, tr(job.dry_run ? "dryTitle" : "doneTitle")),
  h("dl", { class: "import-counts" }, counts.map((k) => h("div", {},
    h("dt", {}, tr(k)), h("dd", { dataset: { count: k } }, String(r[k] ?? 0)))),
  h("div", {}, h("dt", {}, tr("errors")),
    h("dd", { dataset: { count: "errors" } }, String(errors.length)))),
  consentLine(r.consent),
  errors.length
    ? h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "import-errors" },
      h("thead", {}, h("tr", {}, ["row", "column", "value", "error"].map((k) =>
        h("th", { scope: "col" }, tr(k === "column" ? "column" : k))))),
      h("tbody", {}, errors.slice(0, 200).map((e) => h("tr", {},
        h("td", {}, String(e.row)), h("td", {}, e.column || ""),
        h("td", {}, e.value === null || e.value === undefined ? "" : String(e.value)),
        h("td", {}, msg(e)))))))
    : h("p", { class: "muted" }, tr("noErrors")),
  errors.length > 200 ? h("p", { class: "muted" }, tr("more", { n: 200 })) : null));
}

async function loadHistory(box) {
  if (!box) return;
  let data;
  try {
    data = await call("GET", "/imports");
  } catch (e) {
    clear(box, h("h2", { id: "import-history-title" }, tr("history")),
      h("p", { class: "muted" }, e.status === 403 ? tr("forbidden") : e.message));
    return;
  }
  const items = data.items || [];
  const summary = (s) => `+${s.created ?? 0} / ~${s.updated ?? 0} / =${s.unchanged ?? 0}`
    + (s.errors ? ` / ! ${s.errors}` : "");
  clear(box, h("h2", { id: "import-history-title" }, tr("history")),
    items.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "import-list" },
        h("thead", {}, h("tr", {}, ["when", "fileCol", "status", "result", ""].map((k) =>
          h("th", { scope: "col" }, k ? tr(k) : "")))),
        h("tbody", {}, items.map((it) => h("tr", { dataset: { importId: String(it.id) } },
          h("td", {}, `#${it.id} · ${fmtDate(it.created_at)}`),
          h("td", {}, it.file_name),
          h("td", {}, tr(`st_${it.status}`)),
          h("td", {}, summary(it.summary || {})),
          h("td", {}, it.status === "done"
            ? h("button", { type: "button", class: "small", onclick: () => undo(it.id, box) }, tr("undo"))
            : null))))))
      : h("p", { class: "muted" }, tr("none")));
}

async function undo(id, box) {
  if (!window.confirm(tr("undoConfirm", { id }))) return;
  try {
    const res = await call("POST", `/imports/${id}/undo`);
    toast(tr("undone", { id, n: res.removed_clients }), "ok");
  } catch (e) {
    toast(e.message, "error");
  }
  await loadHistory(box);
}
