// The REST API client: bearer token from localStorage, JSON errors {"error","field"}
// (and "error_ru", shown while the UI speaks Russian).
import { getLang } from "./i18n.js";

const TOKEN_KEY = "crmhub.token";

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || null;
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** api("GET", "/leads", {query}) or api("POST", "/leads/1/reject", {body}). */
export async function api(method, path, { body, query, token, headers: extra } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: "application/json", ...(extra || {}) };
  const auth = token ?? getToken();
  if (auth) headers.Authorization = `Bearer ${auth}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    throw new ApiError(0, `network error: ${exc.message}`);
  }
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text.slice(0, 300) };
    }
  }
  if (!resp.ok) {
    const message = data && getLang() === "ru" && data.error_ru ? data.error_ru : data && data.error;
    const err = new ApiError(resp.status, message || resp.statusText, data && data.field);
    err.data = data;
    if (resp.status === 401 && path !== "/me") window.dispatchEvent(new CustomEvent("crm:unauthorized"));
    throw err;
  }
  return data;
}
