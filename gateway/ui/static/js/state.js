// Who is signed in and the names of colleagues (admins and supervisors may list users).
import { api } from "./api.js";
import { t } from "./i18n.js";

export const state = { me: null, users: new Map() };

export async function loadUsers() {
  state.users = new Map();
  if (state.me) state.users.set(state.me.id, state.me.name || state.me.email);
  if (!state.me || !["admin", "supervisor"].includes(state.me.role)) return;
  try {
    const page = await api("GET", "/users");
    for (const u of page.items) state.users.set(u.id, u.name || u.email);
  } catch {
    /* names are a nicety: ids are shown instead */
  }
}

export function ownerName(id) {
  if (id === null || id === undefined) return t("none");
  const name = state.users.get(id) || `#${id}`;
  return state.me && id === state.me.id ? `${name} (${t("you")})` : name;
}
