// Export of the clients list: GET /api/v1/clients/export with the list's current filters,
// downloaded as an .xlsx or .csv file (the token goes in the header, so fetch + a blob link).
import { ApiError } from "./api.js";
import { h, toast } from "./dom.js";
import { addStrings, getLang, t } from "./i18n.js";

addStrings({
  ru: {
    "export.button": "Экспорт",
    "export.format": "Формат файла",
    "export.busy": "Готовим файл…",
    "export.done": "Файл {name} скачан",
  },
  en: {
    "export.button": "Export",
    "export.format": "File format",
    "export.busy": "Preparing the file…",
    "export.done": "Downloaded {name}",
  },
});

/** The file for `query` (the list's filters) in `format`; resolves to its name. */
export async function downloadExport(query, format) {
  const url = new URL("/api/v1/clients/export", location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  url.searchParams.set("format", format);
  const resp = await fetch(url, { headers: { Accept: "*/*" }, credentials: "same-origin" });
  if (!resp.ok) {
    let data = {};
    try {
      data = await resp.json();
    } catch {
      data = { error: resp.statusText };
    }
    const message = getLang() === "ru" && data.error_ru ? data.error_ru : data.error;
    throw new ApiError(resp.status, message || resp.statusText, data.field);
  }
  const disposition = resp.headers.get("Content-Disposition") || "";
  const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || `clients.${format}`;
  const blob = await resp.blob();
  const link = h("a", { href: URL.createObjectURL(blob), download: name, hidden: true });
  document.body.append(link);
  link.click();
  setTimeout(() => {
    URL.revokeObjectURL(link.href);
    link.remove();
  }, 1000);
  return name;
}

/** A format picker and an "Export" button; `getQuery()` gives the list's current filters. */
export function exportControls(getQuery) {
  const format = h("select", { name: "export-format", "aria-label": t("export.format") },
    h("option", { value: "xlsx" }, "Excel (.xlsx)"), h("option", { value: "csv" }, "CSV"));
  const button = h("button", { type: "button", id: "clients-export" }, t("export.button"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = t("export.busy");
    try {
      const name = await downloadExport(getQuery(), format.value);
      toast(t("export.done", { name }), "ok");
    } catch (e) {
      toast(e.message, "error");
    } finally {
      button.disabled = false;
      button.textContent = t("export.button");
    }
  });
  return h("div", { class: "export-controls row" }, format, button);
}
