// Admins: a new pipeline (its stages and loss reasons, one a line) and the settings of a
// pipeline (its name, the probability of each stage, the loss-reason catalogue).
import { api } from "./api.js";
import { field, h, toast } from "./dom.js";
import { addStrings, t } from "./i18n.js";
import { openForm } from "./modal.js";

addStrings({
  ru: {
    "pf.new": "Новая воронка", "pf.edit": "Настроить воронку", "pf.name": "Название воронки",
    "pf.stages": "Этапы (по одному в строке; «Выиграна» и «Проиграна» добавятся сами)",
    "pf.reasons": "Причины проигрыша (по одной в строке)",
    "pf.reasonsHint": "Убранная из списка причина уходит в архив: у проигранных сделок она остаётся.",
    "pf.probability": "Вероятность, %: {stage}", "pf.created": "Воронка «{name}» создана",
    "pf.saved": "Воронка сохранена",
  },
  en: {
    "pf.new": "New pipeline", "pf.edit": "Pipeline settings", "pf.name": "Pipeline name",
    "pf.stages": "Stages (one a line; Won and Lost are added)",
    "pf.reasons": "Loss reasons (one a line)",
    "pf.reasonsHint": "A reason taken off the list is archived: lost deals keep it.",
    "pf.probability": "Probability, %: {stage}", "pf.created": "Pipeline “{name}” created",
    "pf.saved": "Pipeline saved",
  },
});

const lines = (text) => String(text || "").split("\n").map((x) => x.trim()).filter(Boolean);

export function openNewPipeline(done) {
  const name = h("input", { name: "name", required: true, maxlength: 200 });
  const stages = h("textarea", { name: "stages", rows: 5 });
  const reasons = h("textarea", { name: "loss_reasons", rows: 4 });
  openForm(t("pf.new"), [field(t("pf.name"), name), field(t("pf.stages"), stages),
    field(t("pf.reasons"), reasons)], async (v) => {
    const body = { name: v.name, stages: lines(v.stages).map((s) => ({ name: s })),
      loss_reasons: lines(v.loss_reasons) };
    if (!body.stages.length) throw { message: t("pf.stages"), field: "stages" };
    const out = await api("POST", "/pipelines", { body });
    toast(t("pf.created", { name: out.name }), "ok");
    await done?.(out);
  }, t("deal.create"));
}

export function openPipelineSettings(p, done) {
  const name = h("input", { name: "name", required: true, maxlength: 200, value: p.name });
  const open = p.stages.filter((s) => !s.closed);
  const probabilities = open.map((s) => field(t("pf.probability", { stage: s.name }),
    h("input", { name: `p_${s.code}`, type: "number", min: 0, max: 100, value: s.probability })));
  const reasons = h("textarea", { name: "loss_reasons", rows: 6 },
    p.loss_reasons.filter((r) => r.active).map((r) => r.name).join("\n"));
  openForm(t("pf.edit"), [field(t("pf.name"), name), ...probabilities,
    field(t("pf.reasons"), reasons), h("p", { class: "muted small" }, t("pf.reasonsHint"))],
  async (v) => {
    const stages = p.stages.map((s) => ({ id: s.id, code: s.code, name: s.name, name_en: s.name_en,
      kind: s.kind, required_fields: s.required_fields,
      probability: s.closed ? s.probability : Number(v[`p_${s.code}`] || 0) }));
    const byName = new Map(p.loss_reasons.map((r) => [r.name.toLowerCase(), r]));
    const kept = lines(v.loss_reasons).map((n) => {
      const old = byName.get(n.toLowerCase());
      return old ? { id: old.id, name: n, name_en: old.name_en === old.name ? null : old.name_en }
        : { name: n };
    });
    const out = await api("PATCH", `/pipelines/${p.id}`, { body: { name: v.name, stages,
      loss_reasons: kept } });
    toast(t("pf.saved"), "ok");
    await done?.(out);
  });
}
