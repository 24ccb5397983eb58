// The REST API client.  People sign in with a session cookie (HttpOnly, sent by the
// browser: credentials same-origin); every write carries the CSRF token the sign-in
// (or GET /me) answered, in the X-CSRF-Token header.  JSON errors {"error","field"}
// (and "error_ru", shown while the UI speaks Russian).  A 401 outside the sign-in steps
// sends to the sign-in page (event "crm:unauthorized").
import { getLang } from "./i18n.js";

const LEGACY_TOKEN_KEY = "crmhub.token"; // the old sign-in kept an API token here
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
let csrfToken = null;

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || null;
  }
}

/** Keep the CSRF token of the signed-in session (null after signing out). */
export function setCsrf(token) {
  csrfToken = token || null;
  localStorage.removeItem(LEGACY_TOKEN_KEY);
}

/** Headers a request made outside api() (uploads, downloads) needs for `method`. */
export function authHeaders(method = "GET") {
  return !SAFE.has(method.toUpperCase()) && csrfToken ? { "X-CSRF-Token": csrfToken } : {};
}

// Answers of these paths never mean "your session ended": a wrong password, an expired
// two-factor step or reset link is shown on the sign-in pages themselves.
const SIGN_IN_PATHS = /^\/(me|setup|auth\/(login|forgot|set-password)(\/|$))/;

/** Notify the app of a 401 (unless it answered a sign-in step). */
export function unauthorized(path) {
  if (!SIGN_IN_PATHS.test(path)) window.dispatchEvent(new CustomEvent("crm:unauthorized"));
}

/** api("GET", "/leads", {query}) or api("POST", "/leads/1/reject", {body}). */
export async function api(method, path, { body, query, headers: extra } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: "application/json", ...authHeaders(method), ...(extra || {}) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
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
    err.retryAfter = Number(resp.headers.get("Retry-After")) || null;
    if (resp.status === 401) unauthorized(path);
    throw err;
  }
  if (data && typeof data.csrf_token === "string") csrfToken = data.csrf_token;
  return data;
}
