// Administration: users (role, team, extension, hours, absences, capacity, weight),
// website forms (webhook URL, HTML snippet, secret rotation) and the routing rules editor
// (check a draft against a sample event, then save).
import { api } from "./api.js";
import { clear, field, fmtDate, h, select, toast } from "./dom.js";
import { addStrings, getLang, t } from "./i18n.js";
import { openForm } from "./modal.js";
import { loadUsers, ownerName, state } from "./state.js";

addStrings({
  ru: {
    "admin.invite": "Пригласить", "admin.inviteTitle": "Пригласить сотрудника",
    "admin.invited": "Приглашение отправлено на {email}",
    "admin.inviteLink": "Почта не настроена: передайте сотруднику эту ссылку (действует 24 часа, один раз).",
    "admin.linkTitle": "Ссылка для входа",
    "admin.endSessions": "Завершить сеансы",
    "admin.confirmEndSessions": "Завершить все сеансы {email}? Сотруднику придётся войти заново.",
    "admin.sessionsEnded": "Сеансы завершены",
    "admin.resetTf": "Сбросить 2FA",
    "admin.confirmResetTf": "Выключить двухфакторный вход у {email} (потерян телефон)? Подключить его заново сотрудник сможет в профиле.",
  },
  en: {
    "admin.invite": "Invite", "admin.inviteTitle": "Invite a user",
    "admin.invited": "An invitation was sent to {email}",
    "admin.inviteLink": "Email is not set up: hand this link to the user (it works once, for 24 hours).",
    "admin.linkTitle": "Sign-in link",
    "admin.endSessions": "End sessions",
    "admin.confirmEndSessions": "End all sessions of {email}? They will have to sign in again.",
    "admin.sessionsEnded": "Sessions ended",
    "admin.resetTf": "Reset 2FA",
    "admin.confirmResetTf": "Turn off two-factor sign-in of {email} (a lost phone)? They can set it up again in their profile.",
  },
});

const TABS = ["users", "forms", "rules"];
const DAYS = [0, 1, 2, 3, 4, 5, 6];

export async function renderAdmin(main, tab) {
  const isAdmin = state.me?.role === "admin";
  const tabs = isAdmin ? TABS : ["users", "rules"];
  const current = tabs.includes(tab) ? tab : tabs[0];
  const body = h("div", { class: "admin-body" }, h("p", { class: "muted" }, t("loading")));
  clear(main,
    h("div", { class: "view-head" }, h("h1", {}, t("admin.title"))),
    h("nav", { class: "tabs", "aria-label": t("admin.title") },
      tabs.map((name) => h("a", {
        href: `#/admin/${name}`,
        "aria-current": name === current ? "page" : null,
      }, t(`admin.${name}`)))),
    body);
  try {
    if (current === "users") await renderUsers(body, isAdmin);
    else if (current === "forms") await renderForms(body);
    else await renderRules(body, isAdmin);
  } catch (e) {
    clear(body, h("p", { class: "field-error", role: "alert" }, e.message));
  }
}

// ---- users ----------------------------------------------------------------------------

function hoursText(wh) {
  return DAYS.map((d) => (wh?.[String(d)] || []).map(([a, b]) => `${a}-${b}`).join(", "));
}

function parseHours(values) {
  const out = {};
  for (const d of DAYS) {
    const text = (values[`wh${d}`] || "").trim();
    if (!text) continue;
    out[String(d)] = text.split(",").map((w) => w.trim().split("-").map((x) => x.trim()));
  }
  return out;
}

function absencesText(list) {
  return (list || []).map((a) => `${a.start} ${a.end}${a.reason ? ` ${a.reason}` : ""}`).join("\n");
}

function parseAbsences(text) {
  return (text || "").split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const [start, end, ...reason] = line.split(/\s+/);
    return { start, end: end || start, reason: reason.join(" ") };
  });
}

function userFields(u, isAdmin) {
  const input = (name, value, attrs = {}) => h("input", { name, value: value ?? "", ...attrs });
  const out = [];
  if (!u) out.push(field(t("admin.email"), input("email", "", { type: "email", required: true })));
  if (isAdmin) {
    out.push(
      field(t("admin.name"), input("name", u?.name)),
      field(t("admin.role"), select("role", ["manager", "supervisor", "admin"].map((r) => [r, t(`role.${r}`)]), u?.role || "manager")),
      field(t("admin.team"), input("team", u?.team)),
      field(t("admin.extension"), input("extension", u?.extension, { inputmode: "numeric" })),
      field(t("admin.timezone"), input("timezone", u?.timezone || "Europe/Moscow")),
    );
  }
  out.push(
    field(t("admin.capacity"), input("capacity", u?.capacity, { type: "number", min: "0" })),
    field(t("admin.weight"), input("weight", u?.weight ?? 1, { type: "number", min: "1", max: "100" })),
  );
  const hours = hoursText(u?.working_hours);
  out.push(h("fieldset", { class: "hours" },
    h("legend", {}, t("admin.hours")),
    h("p", { class: "muted small" }, t("admin.hoursHint")),
    DAYS.map((d) => field(t(`day.${d}`), input(`wh${d}`, hours[d], { placeholder: "09:00-18:00" })))),
    h("div", { class: "field" },
      h("label", { for: "absences" }, t("admin.absences")),
      h("textarea", { id: "absences", name: "absences", rows: "3", placeholder: "2026-12-20 2026-12-31 отпуск",
        "aria-describedby": "absences-error" }, absencesText(u?.absences)),
      h("p", { class: "muted small" }, t("admin.absencesHint")),
      h("p", { id: "absences-error", class: "field-error", role: "alert" })));
  return out;
}

function userBody(values, isAdmin, creating) {
  const body = {
    capacity: values.capacity === "" ? null : Number(values.capacity),
    weight: Number(values.weight || 1),
    working_hours: parseHours(values),
    absences: parseAbsences(values.absences),
  };
  if (isAdmin) {
    Object.assign(body, {
      name: values.name || "", role: values.role, team: values.team || null,
      extension: values.extension || null, timezone: values.timezone || "Europe/Moscow",
    });
  }
  if (creating) body.email = values.email;
  return body;
}

function showLink(email, link) {
  openForm(t("admin.linkTitle"), [
    h("p", {}, t("admin.inviteLink")),
    h("input", { class: "token", id: "invite-link", readonly: true, value: link, "aria-label": `${t("admin.linkTitle")}: ${email}`,
      onfocus: (ev) => ev.target.select() }),
  ], async () => {}, t("close"));
}

function invite(onDone) {
  openForm(t("admin.inviteTitle"), [
    field(t("admin.email"), h("input", { name: "email", type: "email", required: true, autocomplete: "off" })),
    field(t("admin.name"), h("input", { name: "name" })),
    field(t("admin.role"), select("role", ["manager", "supervisor", "admin"].map((r) => [r, t(`role.${r}`)]), "manager")),
    field(t("admin.team"), h("input", { name: "team" })),
  ], async (values) => {
    const out = await api("POST", "/users/invite", { body: {
      email: values.email, role: values.role, name: values.name || "", team: values.team || null,
    } });
    if (out.link) document.getElementById("modal").addEventListener("close", () => showLink(values.email, out.link), { once: true });
    else toast(t("admin.invited", { email: values.email }), "ok");
    await onDone();
  }, t("admin.invite"));
}

function showToken(user) {
  openForm(t("admin.tokenTitle"), [
    h("p", {}, t("admin.tokenOnce", { email: user.email })),
    h("input", { class: "token", readonly: true, value: user.token, "aria-label": t("signin.token"),
      onfocus: (ev) => ev.target.select() }),
  ], async () => {}, t("close"));
}

async function renderUsers(body, isAdmin) {
  const page = await api("GET", "/users");
  const reload = async () => {
    await loadUsers();
    await renderUsers(body, isAdmin);
  };
  const edit = (u) => openForm(u ? `${t("admin.editUser")}: ${u.name || u.email}` : t("admin.addUser"),
    userFields(u, isAdmin), async (values) => {
      const payload = userBody(values, isAdmin, !u);
      if (u) {
        await api("PATCH", `/users/${u.id}`, { body: payload });
        toast(t("admin.saved"), "ok");
      } else {
        const created = await api("POST", "/users", { body: payload });
        // the form's dialog closes when this returns: show the token after that
        document.getElementById("modal").addEventListener("close", () => showToken(created), { once: true });
      }
      await reload();
    });
  const act = async (u, path, confirmText) => {
    if (confirmText && !window.confirm(confirmText)) return;
    try {
      const out = await api("POST", `/users/${u.id}/${path}`, { body: {} });
      if (out && out.token) showToken(out);
      else toast(t(path === "end-sessions" ? "admin.sessionsEnded" : "admin.saved"), "ok");
      await reload();
    } catch (e) {
      toast(e.message, "error");
    }
  };
  const rows = page.items.map((u) => h("tr", { dataset: { userId: String(u.id) }, class: u.active ? "" : "inactive" },
    h("td", { "data-label": t("admin.name") }, h("strong", {}, u.name || "—"), h("div", { class: "muted small" }, u.email)),
    h("td", { "data-label": t("admin.role") }, t(`role.${u.role}`)),
    h("td", { "data-label": t("admin.team") }, u.team || "—"),
    h("td", { "data-label": t("admin.extension") }, u.extension || "—"),
    h("td", { "data-label": t("admin.capacity") }, u.capacity ?? "∞", " · ", `×${u.weight}`),
    h("td", { "data-label": t("admin.state") }, u.active ? t("admin.active") : t("admin.inactive")),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "small", onclick: () => edit(u) }, t("admin.edit")),
      isAdmin && u.id !== state.me.id ? h("button", { type: "button", class: "small",
        onclick: () => act(u, u.active ? "deactivate" : "activate", u.active ? t("admin.confirmDeactivate", { email: u.email }) : null) },
      u.active ? t("admin.deactivate") : t("admin.activate")) : null,
      isAdmin ? h("button", { type: "button", class: "small",
        onclick: () => act(u, "rotate-token", t("admin.confirmRotate", { email: u.email })) }, t("admin.rotate")) : null,
      isAdmin && u.active ? h("button", { type: "button", class: "small",
        onclick: () => act(u, "end-sessions", t("admin.confirmEndSessions", { email: u.email })) }, t("admin.endSessions")) : null,
      isAdmin ? h("button", { type: "button", class: "small",
        onclick: () => act(u, "two-factor/reset", t("admin.confirmResetTf", { email: u.email })) }, t("admin.resetTf")) : null)));
  clear(body,
    isAdmin ? h("div", { class: "row" },
      h("button", { type: "button", class: "primary", onclick: () => invite(reload) }, `+ ${t("admin.invite")}`),
      h("button", { type: "button", onclick: () => edit(null) }, `+ ${t("admin.addUser")}`)) : null,
    h("div", { class: "table-wrap" }, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["admin.name", "admin.role", "admin.team", "admin.extension", "admin.capacity", "admin.state"].map((k) => h("th", {}, t(k))), h("th", {}, ""))),
      h("tbody", {}, rows))));
}

// ---- website forms --------------------------------------------------------------------

async function renderForms(body) {
  const page = await api("GET", "/forms");
  const reload = () => renderForms(body);
  const create = () => openForm(t("admin.addForm"), [field(t("admin.formName"), h("input", { name: "name", required: true }))],
    async (values) => {
      await api("POST", "/forms", { body: { name: values.name } });
      toast(t("admin.saved"), "ok");
      await reload();
    });
  const act = async (f, method, path, payload, confirmText) => {
    if (confirmText && !window.confirm(confirmText)) return;
    try {
      await api(method, path, { body: payload });
      toast(t("admin.saved"), "ok");
      await reload();
    } catch (e) {
      toast(e.message, "error");
    }
  };
  const copy = async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      toast(t("admin.copied"), "ok");
    } catch {
      toast(t("admin.copyFailed"), "error");
    }
  };
  const cards = page.items.map((f) => h("article", { class: "card form-card", dataset: { formId: String(f.id) } },
    h("h2", {}, f.name, " ", h("span", { class: "badge" }, f.active ? t("admin.active") : t("admin.inactive"))),
    h("label", { class: "small", for: `hook-${f.id}` }, t("admin.webhook")),
    h("div", { class: "row" },
      h("input", { id: `hook-${f.id}`, class: "mono", readonly: true, value: f.webhook_url }),
      h("button", { type: "button", class: "small", onclick: () => copy(f.webhook_url) }, t("admin.copy"))),
    h("label", { class: "small", for: `snippet-${f.id}` }, t("admin.snippet")),
    h("textarea", { id: `snippet-${f.id}`, class: "mono snippet", readonly: true, rows: "8" }, f.html_snippet),
    h("div", { class: "row" },
      h("button", { type: "button", class: "small", onclick: () => copy(f.html_snippet) }, t("admin.copy")),
      h("button", { type: "button", class: "small",
        onclick: () => act(f, "POST", `/forms/${f.id}/rotate-secret`, {}, t("admin.confirmSecret")) }, t("admin.rotateSecret")),
      h("button", { type: "button", class: "small",
        onclick: () => act(f, "PATCH", `/forms/${f.id}`, { active: !f.active }) }, f.active ? t("admin.deactivate") : t("admin.activate")))));
  clear(body,
    h("div", { class: "row" }, h("button", { type: "button", class: "primary", onclick: create }, `+ ${t("admin.addForm")}`)),
    cards.length ? cards : h("p", { class: "muted" }, t("empty")));
}

// ---- routing rules --------------------------------------------------------------------

function sampleEvent(values) {
  const identities = [];
  const phone = (values.phone || "").trim();
  const email = (values.email || "").trim();
  if (phone) identities.push(`phone:${phone.startsWith("+") ? phone : `+${phone.replace(/\D/g, "")}`}`);
  if (email) identities.push(`email:${email.toLowerCase()}`);
  const kinds = { call: "call_started", email: "email_received", webform: "form_submitted", telegram: "message_received", vk: "message_received" };
  return {
    channel: values.channel,
    kind: kinds[values.channel],
    external_id: `explain-${Date.now()}`,
    occurred_at: values.at ? new Date(values.at).toISOString() : new Date().toISOString(),
    identities,
    text: values.text || null,
    source: values.source || null,
  };
}

function showProblems(box, e) {
  const list = e.data?.errors;
  clear(box, h("p", { class: "field-error", role: "alert" }, e.message),
    list ? h("ul", { class: "rule-errors" }, list.map((x) => h("li", {}, `${t("admin.line")} ${x.line}:${x.column} — ${x.message}`))) : null);
}

function showExplain(box, out) {
  const ru = getLang() === "ru";
  clear(box, h("ol", { class: "explain" }, out.rules.map((r) => h("li", { class: r.selected ? "selected" : r.matched ? "matched" : "" },
    h("strong", {}, r.rule_id), r.selected ? ` ← ${t("admin.selected")}` : "",
    h("div", { class: "small" }, ru ? r.why_ru : r.why),
    r.decision ? h("div", { class: "small decision" },
      `${t("admin.decision")}: `, r.decision.user_id ? `${t("leads.owner")}: ${ownerName(r.decision.user_id)}` : `${t("admin.queue")} ${r.decision.queue || "—"}`,
      " · ", ru ? r.decision.reason_ru : r.decision.reason) : null))));
}

async function renderRules(body, isAdmin) {
  const current = isAdmin ? await api("GET", "/rules") : null;
  const editor = h("textarea", { id: "rules-yaml", class: "mono rules-editor", rows: "18", spellcheck: "false",
    "aria-label": t("admin.rules"), readonly: !isAdmin }, current ? current.text : "");
  const result = h("div", { class: "rules-result", "aria-live": "polite" });
  const sample = h("form", { class: "sample", novalidate: true },
    h("h2", {}, t("admin.sample")),
    field(t("admin.channel"), select("channel", ["call", "email", "webform", "telegram", "vk"].map((c) => [c, t(`source.${c}`)]), "call")),
    field(t("admin.phone"), h("input", { name: "phone", type: "tel", placeholder: "+79161234567" })),
    field(t("admin.emailAddr"), h("input", { name: "email", type: "email" })),
    field(t("admin.text"), h("input", { name: "text" })),
    field(t("admin.at"), h("input", { name: "at", type: "datetime-local" })),
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary" }, t("admin.check"))));
  sample.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = Object.fromEntries(new FormData(sample).entries());
    const payload = { event: sampleEvent(values) };
    if (isAdmin) payload.yaml = editor.value;
    try {
      showExplain(result, await api("POST", "/rules/explain", { body: payload }));
    } catch (e) {
      showProblems(result, e);
    }
  });
  const save = async () => {
    try {
      await api("PUT", "/rules", { body: { yaml: editor.value } });
      toast(t("admin.rulesSaved"), "ok");
      await renderRules(body, isAdmin);
      clear(body.querySelector(".rules-result"), h("p", { class: "ok" }, t("admin.rulesSaved")));
    } catch (e) {
      showProblems(result, e);
    }
  };
  const history = h("section", { class: "rules-history", "aria-labelledby": "rules-history-title" });
  const showHistory = async () => {
    const page = await api("GET", "/rules/history");
    clear(history, h("h2", { id: "rules-history-title" }, t("admin.history")),
      h("ul", { class: "plain" }, page.items.map((v) => h("li", { dataset: { version: String(v.id) } },
        h("strong", {}, `№${v.id}`), " · ", t(`admin.src.${v.source}`), " · ", fmtDate(v.created_at),
        v.created_by ? ` · ${ownerName(v.created_by)}` : "",
        v.id === current.version ? h("span", { class: "badge" }, t("admin.inForce")) : [
          " ",
          h("button", { type: "button", class: "small link", onclick: async () => {
            editor.value = (await api("GET", `/rules/history/${v.id}`)).text;
          } }, t("admin.open")),
          h("button", { type: "button", class: "small", onclick: async () => {
            if (!window.confirm(t("admin.confirmRestore", { n: v.id }))) return;
            try {
              await api("POST", `/rules/history/${v.id}/restore`, { body: {} });
              toast(t("admin.rulesSaved"), "ok");
              await renderRules(body, isAdmin);
            } catch (e) {
              showProblems(result, e);
            }
          } }, t("admin.restore")),
        ]))));
  };
  clear(body,
    isAdmin ? h("p", { class: "muted small" }, current.version ? `${t("admin.version")} №${current.version} · ${current.digest.slice(0, 12)}${current.path ? ` · ${current.path}` : ""}` : t("admin.noRulesFile")) : h("p", { class: "muted" }, t("admin.explainOnly")),
    h("div", { class: "rules-layout" },
      h("div", {}, editor,
        isAdmin ? h("div", { class: "row" }, h("button", { type: "button", class: "primary", id: "rules-save", onclick: save }, t("save"))) : null,
        isAdmin ? history : null),
      h("div", {}, sample, result)));
  if (isAdmin) await showHistory();
}
