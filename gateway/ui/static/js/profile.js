// The admin-defined parts of a client's profile: the statuses list and the custom fields,
// read from the API when a clients view opens (so an admin's change shows on the next view).
import { api } from "./api.js";
import { getLang, t } from "./i18n.js";

export const profile = { statuses: [], fields: [] };

/** Fetch the statuses and custom fields (everyone may read them). */
export async function loadProfile() {
  const [statuses, fields] = await Promise.all([
    api("GET", "/client-statuses"), api("GET", "/custom-fields")]);
  profile.statuses = statuses.items;
  profile.fields = fields.items;
  return profile;
}

const en = () => getLang() === "en";

/** A status key in the current language (the key itself when the list has no such status). */
export function statusName(key) {
  const s = profile.statuses.find((x) => x.key === key);
  if (!s) return key;
  return en() ? s.name_en || s.name_ru : s.name_ru;
}

/** [key, name] of the statuses a client may be given, plus `current` if it is inactive. */
export function statusOptions(current) {
  const out = profile.statuses.filter((s) => s.active || s.key === current)
    .map((s) => [s.key, statusName(s.key)]);
  if (current && !out.some(([k]) => k === current)) out.push([current, current]);
  return out;
}

export function fieldLabel(f) {
  return en() ? f.label_en || f.label_ru : f.label_ru;
}

/** The active custom fields, in the admin's order. */
export function activeFields() {
  return profile.fields.filter((f) => f.active);
}

/** A custom value as text: a multi-choice joined, a date as it is. */
export function customText(value) {
  if (value === null || value === undefined || value === "") return t("none");
  return Array.isArray(value) ? value.join(", ") : String(value);
}
