// A client's or lead's history: the answer composer above the timeline of interactions.
import { api } from "./api.js";
import { fmtDate, fmtDuration, h, htmlFrame } from "./dom.js";
import { t, tOr } from "./i18n.js";
import { replyComposer } from "./reply.js";

/**
 * The history card: `target` ({client_id} or {lead_id}) and `emails` for the composer,
 * `items` the timeline (newest first), `reload()` after an answer was accepted.
 */
export function conversationCard(target, emails, items, reload) {
  const composer = replyComposer(target, emails, items, () => setTimeout(reload, 1500));
  return h("section", { class: "card", "aria-labelledby": "tl-title" },
    composer.element,
    h("h2", { id: "tl-title" }, t("clients.timeline")),
    items.length
      ? h("ol", { class: "timeline" }, items.map((i) => timelineItem(i, composer)))
      : h("p", { class: "muted" }, t("empty")));
}

const ICONS = { call: "☎", email: "✉", webform: "✎", telegram: "➤", vk: "➤" };

/** One timeline entry; the composer adds "Reply" to inbound emails. */
function timelineItem(i, composer) {
  const head = h("div", { class: "tl-head" },
    h("span", { class: "tl-icon", "aria-hidden": "true" }, ICONS[i.channel] || "•"),
    h("strong", {}, tOr(`tl.${i.channel}`, i.channel)),
    h("span", { class: "muted" }, ` · ${t(i.direction === "out" || i.direction === "outbound" ? "tl.out" : "tl.in")}`),
    i.contact_person ? h("span", { class: "tl-person" }, ` · ${t("tl.contactPerson", { name: i.contact_person.name })}`) : null,
    h("time", { datetime: i.occurred_at || "" }, fmtDate(i.occurred_at)));
  const parts = [head];
  if (i.channel === "call") {
    parts.push(h("div", {},
      i.outcome ? h("span", { class: `badge oc-${i.outcome}` }, tOr(`outcome.${i.outcome}`, i.outcome)) : null,
      " ", `${t("tl.duration")}: ${fmtDuration(i.duration_s)}`,
      i.recording_href ? [" · ", recordingPlayer(i.recording_href)] : null));
  } else if (i.channel === "email") {
    parts.push(h("div", { class: "tl-subject" }, i.subject || t("tl.noSubject")));
    if (i.direction === "in" && composer.element) {
      parts.push(h("button", { type: "button", class: "link small reply-to",
        onclick: () => composer.replyTo(i) }, t("reply.answer")));
    }
    if (i.body) parts.push(h("p", { class: "tl-body" }, i.body.slice(0, 600)));
    if (i.html) {
      parts.push(h("details", {}, h("summary", {}, t("tl.showHtml")),
        htmlFrame(i.html, i.subject || t("tl.email"))));
    }
  } else {
    if (i.subject) parts.push(h("div", { class: "tl-subject" }, i.subject));
    if (i.body) parts.push(h("p", { class: "tl-body" }, i.body.slice(0, 1000)));
  }
  return h("li", { class: `tl-item ch-${i.channel}`, dataset: { kind: i.kind } }, parts);
}

/**
 * A call's recording.  The API wants the bearer token in a header, which an <audio src>
 * cannot send.  So the UI asks the API (with the header) for a short-lived signed link to
 * the same recording (GET .../recording/link, 10 minutes, signed for this user) and gives
 * that to the element: the browser then streams it itself, with HTTP Range requests to
 * seek, and preload="none" fetches nothing until play.  (A Blob URL would need the whole
 * file before playing, and Chromium disables the controls of an <audio> without a source.)
 * The token never lands in a URL; an expired link is renewed once on error.
 */
function recordingPlayer(href) {
  const note = h("span", { class: "muted small tl-audio-error", role: "status" });
  const audio = h("audio", {
    controls: true, preload: "none", class: "tl-audio",
    "aria-label": t("tl.recording"), title: t("tl.recording"), dataset: { href },
  });
  const linkPath = `${href.replace(/^\/api\/v1/, "")}/link`;
  const fetchLink = () => api("GET", linkPath).then((r) => { audio.src = r.url; });
  let renewed = false;
  const firstLink = () => fetchLink().catch((exc) => {
    note.textContent = `${t("tl.recordingError")} (${exc.message})`;
  });
  if ("IntersectionObserver" in window) {  // ask for links only for the calls on screen
    const seen = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        seen.disconnect();
        firstLink();
      }
    });
    seen.observe(audio);
  } else {
    firstLink();
  }
  audio.addEventListener("error", () => {
    if (renewed || !audio.src) {
      note.textContent = t("tl.recordingError");
      return;
    }
    renewed = true;  // the link may have expired while the page stayed open
    fetchLink().then(() => audio.play()).catch(() => { note.textContent = t("tl.recordingError"); });
  });
  return h("span", { class: "tl-recording" }, audio, note);
}
