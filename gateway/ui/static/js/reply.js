// Answer a client from their card: an email (in the thread of the email answered, so the
// client's reply joins it) or a message by the messenger they last wrote from.
// POST /api/v1/emails or /api/v1/messages with an Idempotency-Key: a double click sends once.
import { api } from "./api.js";
import { clearErrors, field, h, select, showError, toast } from "./dom.js";
import { t } from "./i18n.js";

const MESSENGERS = ["telegram", "vk"];

function newKey() {
  return globalThis.crypto?.randomUUID?.() || `ui-${Date.now()}-${Math.random()}`;
}

function reSubject(subject) {
  const s = (subject || "").trim();
  return !s || /^re:/i.test(s) ? s : `Re: ${s}`;
}

/**
 * The composer for a client or lead card.  `target`: {client_id} or {lead_id}; `emails`:
 * its addresses; `items`: the timeline (newest first); `onSent()` is called after the
 * server accepted the message (to reload the card).  Returns
 * {element, replyTo(interaction)}: replyTo fills the form to answer that email.
 */
export function replyComposer(target, emails, items, onSent) {
  const lastChat = items.find((i) => MESSENGERS.includes(i.channel) && i.direction === "in");
  const lastEmail = items.find((i) => i.channel === "email" && i.direction === "in");
  const channels = [];
  if (emails.length || lastEmail) channels.push(["email", t("reply.email")]);
  if (lastChat) channels.push(["messenger", t(`tl.${lastChat.channel}`)]);
  if (!channels.length) return { element: null, replyTo: () => {} };

  let replyTo = lastEmail || null;
  let key = newKey();
  const channel = select("channel", channels, channels[0][0]);
  const subject = h("input", { name: "subject", maxlength: 900,
    value: replyTo ? reSubject(replyTo.subject) : "" });
  const text = h("textarea", { name: "text", rows: 4, required: true, maxlength: 4096 });
  const context = h("p", { class: "muted small reply-context" });
  const subjectField = field(t("reply.subject"), subject);
  const send = h("button", { type: "submit", class: "primary" }, t("reply.send"));
  const form = h("form", { class: "reply", novalidate: true, "aria-label": t("reply.title") },
    h("h2", {}, t("reply.title")),
    field(t("reply.channel"), channel), subjectField, context, field(t("reply.text"), text),
    h("p", { class: "form-error field-error", role: "alert" }),
    h("div", { class: "row end" }, send));

  function refresh() {
    const isEmail = channel.value === "email";
    subjectField.hidden = !isEmail;
    context.textContent = isEmail && replyTo
      ? t("reply.inThread", { subject: replyTo.subject || t("tl.noSubject") })
      : "";
    key = newKey();
  }
  channel.addEventListener("change", refresh);
  refresh();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const body = text.value.trim();
    if (!body) {
      showError(form, { message: t("reply.empty"), field: "text" });
      return;
    }
    send.disabled = true;
    try {
      const headers = { "Idempotency-Key": key };
      if (channel.value === "email") {
        await api("POST", "/emails", { headers, body: {
          ...target,
          subject: subject.value.trim(),
          text: body,
          ...(replyTo ? { reply_to: replyTo.id } : {}),
        } });
      } else {
        await api("POST", "/messages", { headers, body: { ...target, text: body } });
      }
      toast(t("reply.queued"), "ok");
      form.reset();
      refresh();
      onSent?.();
    } catch (e) {
      showError(form, { message: e.message, field: e.field });
    } finally {
      send.disabled = false;
    }
  });

  return {
    element: form,
    replyTo(item) {
      replyTo = item;
      channel.value = "email";
      subject.value = reSubject(item.subject);
      refresh();
      text.focus();
    },
  };
}
