// Strings of the operator UI: Russian by default, English on demand.
import { PROFILE_STRINGS } from "./i18n_profile.js";

const STRINGS = {
  ru: {
    skip: "Перейти к содержимому",
    "signin.hint": "Войдите с вашим API-токеном",
    "signin.token": "API-токен",
    "signin.submit": "Войти",
    "signin.empty": "Введите токен",
    signout: "Выйти",
    menu: "Меню",
    "search.label": "Поиск клиентов", "search.placeholder": "Клиент, телефон, ИНН…",
    "nav.leads": "Лиды", "nav.clients": "Клиенты", "nav.deals": "Сделки", "nav.tasks": "Задачи",
    "nav.analytics": "Аналитика",
    "an.title": "Аналитика", "an.from": "С", "an.to": "По", "an.group": "Период",
    "an.day": "по дням", "an.week": "по неделям", "an.month": "по месяцам",
    "an.funnel": "Воронка продаж",
    "an.funnelSum": "Сделок создано: {created}, выиграно: {won} на {amount}, проиграно: {lost}",
    "an.stage": "Этап", "an.reached": "Дошли", "an.share": "Доля", "an.now": "Сейчас",
    "an.conversion": "Конверсия дальше", "an.lost": "Потеряно", "an.reasons": "Причины",
    "an.requests": "Обращения и отказы", "an.period": "Период", "an.count": "Обращений",
    "an.bySource": "По каналам", "an.refusals": "Отказов", "an.converted": "В сделки",
    "an.managers": "Работа менеджеров", "an.manager": "Сотрудник", "an.leads": "Лидов",
    "an.leadsNew": "Новых", "an.calls": "Звонков", "an.callsAnswered": "Состоялось",
    "an.emails": "Писем", "an.tasksOpen": "Открытых задач",
    "role.admin": "администратор", "role.supervisor": "руководитель", "role.manager": "менеджер",
    loading: "Загрузка…", empty: "Пусто", you: "вы", none: "—", close: "Закрыть",
    cancel: "Отмена", save: "Сохранить", open: "Открыть", error: "Ошибка",
    "leads.title": "Лиды", "leads.status": "Статус", "leads.source": "Источник",
    "leads.all": "Все", "leads.name": "Лид", "leads.contacts": "Контакты",
    "leads.owner": "Ответственный", "leads.created": "Создан", "leads.actions": "Действия",
    "leads.convert": "Конвертировать", "leads.reject": "Отклонить", "leads.total": "Всего: {n}",
    "leads.reason": "Причина отказа", "leads.rejected": "Лид отклонён",
    "leads.convertTitle": "Конвертировать лид в клиента и сделку",
    "leads.kind": "Тип клиента", "leads.company": "Компания", "leads.person": "Частное лицо",
    "leads.clientName": "Название клиента", "leads.dealTitle": "Название сделки",
    "leads.amount": "Сумма, ₽", "leads.converted": "Создан клиент «{name}» и сделка",
    "leads.review": "проверить",
    "status.new": "Новый", "status.in_progress": "В работе", "status.converted": "Конвертирован",
    "status.rejected": "Отклонён",
    "source.webform": "Сайт", "source.call": "Звонок", "source.email": "Почта",
    "source.telegram": "Telegram", "source.vk": "ВКонтакте", "source.manual": "Вручную",
    "clients.title": "Клиенты", "clients.search": "Поиск: имя, ИНН, телефон, email",
    "clients.find": "Найти", "clients.name": "Клиент", "clients.status": "Статус",
    "clients.phones": "Телефоны", "clients.emails": "Почта", "clients.back": "← Все клиенты",
    "clients.inn": "ИНН", "clients.segment": "Сегмент", "clients.owner": "Ответственный",
    "clients.deals": "Открытые сделки", "clients.timeline": "История", "clients.notes": "Заметки",
    "clients.new": "Новый клиент", "clients.newTitle": "Новый клиент", "clients.create": "Создать",
    "clients.edit": "Изменить", "clients.editTitle": "Изменить клиента",
    "clients.nameLabel": "Название или имя", "clients.phonesList": "Телефоны (через запятую)",
    "clients.emailsList": "Почта (через запятую)",
    "clients.addPhones": "Добавить телефоны (через запятую)",
    "clients.addEmails": "Добавить почту (через запятую)",
    "clients.created": "Клиент «{name}» создан", "clients.saved": "Изменения сохранены",
    "cstatus.cold": "Холодный", "cstatus.thinking": "Думает", "cstatus.ready": "Готов купить",
    "cstatus.active": "Активный", "cstatus.regular": "Постоянный", "cstatus.lost": "Потерян",
    "tl.call": "Звонок", "tl.email": "Письмо", "tl.webform": "Заявка с сайта",
    "tl.telegram": "Telegram", "tl.vk": "ВКонтакте", "tl.in": "входящий", "tl.out": "исходящий",
    "tl.duration": "Длительность", "tl.recording": "Запись разговора", "tl.recordingError": "Запись не загрузилась", "tl.showHtml": "Показать письмо",
    "tl.noSubject": "(без темы)",
    "reply.title": "Ответить клиенту", "reply.channel": "Канал", "reply.email": "Письмо",
    "reply.subject": "Тема", "reply.text": "Текст", "reply.send": "Отправить",
    "reply.empty": "Напишите текст", "reply.queued": "Отправляется — появится в истории",
    "reply.inThread": "Ответ в цепочке «{subject}»", "reply.answer": "Ответить",
    "lead.back": "← Все лиды", "lead.why": "Почему назначен", "lead.client": "Клиент",
    "lead.priority": "Приоритет", "lead.tags": "Метки", "lead.queue": "Очередь",
    "outcome.answered": "Отвечен", "outcome.missed": "Пропущен", "outcome.busy": "Занято",
    "outcome.failed": "Не удался", "outcome.no_answer": "Нет ответа",
    "deals.title": "Воронка сделок", "deals.move": "Этап", "deals.client": "Клиент",
    "deals.moved": "Сделка перемещена: {stage}", "deals.total": "{n} {deals} · {sum}",
    "deals.forms": "сделка|сделки|сделок",
    "tasks.title": "Задачи", "tasks.overdue": "Просрочено", "tasks.today": "На сегодня",
    "tasks.done": "Готово", "tasks.snooze": "Отложить", "tasks.due": "Срок",
    "tasks.15": "на 15 минут", "tasks.60": "на 1 час", "tasks.1440": "на завтра",
    "tasks.marked": "Задача выполнена", "tasks.snoozed": "Задача отложена",
    "tkind.call_back": "Перезвонить", "tkind.send_offer": "Отправить КП",
    "tkind.offer_discount": "Предложить скидку", "tkind.check_payment": "Проверить оплату",
    "tkind.send_documents": "Отправить документы", "tkind.other": "Другое",
    "call.button": "Позвонить", "call.number": "Номер",
    "call.started": "Звоним: сначала ваш телефон, затем клиент",
    "live.title": "События", "live.notify": "Включить уведомления",
    "live.online": "● в сети", "live.offline": "○ переподключение…",
    "live.newCall": "Новый звонок", "live.incoming": "Входящий звонок",
    "live.owner": "Ответственный", "live.openDeals": "Открытые сделки",
    "live.last": "Последние контакты", "live.openClient": "Карточка клиента",
    "live.openLead": "Открыть лид", "live.newLead": "Новый лид: {title}",
    "live.newMessage": "Новое сообщение ({channel}): {preview}",
    "live.callState": "Звонок {caller}: {state}", "live.reminder": "Напоминание: {title}",
    "live.outbox": "Исходящее ({channel}): {status}", "live.sla": "SLA: {text}",
    "cs.call_started": "звонит", "cs.call_answered": "отвечен", "cs.call_missed": "пропущен",
    "cs.call_ended": "завершён",
  },
  en: {
    skip: "Skip to content",
    "signin.hint": "Sign in with your API token",
    "signin.token": "API token",
    "signin.submit": "Sign in",
    "signin.empty": "Enter your token",
    signout: "Sign out",
    menu: "Menu",
    "search.label": "Search clients", "search.placeholder": "Client, phone, INN…",
    "nav.leads": "Leads", "nav.clients": "Clients", "nav.deals": "Deals", "nav.tasks": "Tasks",
    "nav.analytics": "Analytics",
    "an.title": "Analytics", "an.from": "From", "an.to": "To", "an.group": "Period",
    "an.day": "by day", "an.week": "by week", "an.month": "by month",
    "an.funnel": "Sales funnel",
    "an.funnelSum": "Deals created: {created}, won: {won} worth {amount}, lost: {lost}",
    "an.stage": "Stage", "an.reached": "Reached", "an.share": "Share", "an.now": "Now",
    "an.conversion": "Conversion onwards", "an.lost": "Lost", "an.reasons": "Reasons",
    "an.requests": "Requests and refusals", "an.period": "Period", "an.count": "Requests",
    "an.bySource": "By channel", "an.refusals": "Refusals", "an.converted": "To deals",
    "an.managers": "Manager activity", "an.manager": "User", "an.leads": "Leads",
    "an.leadsNew": "New", "an.calls": "Calls", "an.callsAnswered": "Answered",
    "an.emails": "Emails", "an.tasksOpen": "Open tasks",
    "role.admin": "admin", "role.supervisor": "supervisor", "role.manager": "manager",
    loading: "Loading…", empty: "Nothing here", you: "you", none: "—", close: "Close",
    cancel: "Cancel", save: "Save", open: "Open", error: "Error",
    "leads.title": "Leads", "leads.status": "Status", "leads.source": "Source",
    "leads.all": "All", "leads.name": "Lead", "leads.contacts": "Contacts",
    "leads.owner": "Owner", "leads.created": "Created", "leads.actions": "Actions",
    "leads.convert": "Convert", "leads.reject": "Reject", "leads.total": "Total: {n}",
    "leads.reason": "Reason", "leads.rejected": "Lead rejected",
    "leads.convertTitle": "Convert the lead into a client and a deal",
    "leads.kind": "Client type", "leads.company": "Company", "leads.person": "Person",
    "leads.clientName": "Client name", "leads.dealTitle": "Deal title",
    "leads.amount": "Amount, ₽", "leads.converted": "Client “{name}” and a deal created",
    "leads.review": "review",
    "status.new": "New", "status.in_progress": "In progress", "status.converted": "Converted",
    "status.rejected": "Rejected",
    "source.webform": "Website", "source.call": "Call", "source.email": "Email",
    "source.telegram": "Telegram", "source.vk": "VK", "source.manual": "Manual",
    "clients.title": "Clients", "clients.search": "Search: name, INN, phone, email",
    "clients.find": "Search", "clients.name": "Client", "clients.status": "Status",
    "clients.phones": "Phones", "clients.emails": "Email", "clients.back": "← All clients",
    "clients.inn": "INN", "clients.segment": "Segment", "clients.owner": "Owner",
    "clients.deals": "Open deals", "clients.timeline": "Timeline", "clients.notes": "Notes",
    "clients.new": "New client", "clients.newTitle": "New client", "clients.create": "Create",
    "clients.edit": "Edit", "clients.editTitle": "Edit the client",
    "clients.nameLabel": "Company or person name", "clients.phonesList": "Phones (comma-separated)",
    "clients.emailsList": "Emails (comma-separated)",
    "clients.addPhones": "Add phones (comma-separated)",
    "clients.addEmails": "Add emails (comma-separated)",
    "clients.created": "Client “{name}” created", "clients.saved": "Changes saved",
    "cstatus.cold": "Cold", "cstatus.thinking": "Thinking", "cstatus.ready": "Ready to buy",
    "cstatus.active": "Active", "cstatus.regular": "Regular", "cstatus.lost": "Lost",
    "tl.call": "Call", "tl.email": "Email", "tl.webform": "Website form",
    "tl.telegram": "Telegram", "tl.vk": "VK", "tl.in": "inbound", "tl.out": "outbound",
    "tl.duration": "Duration", "tl.recording": "Recording", "tl.recordingError": "The recording did not load", "tl.showHtml": "Show the email",
    "tl.noSubject": "(no subject)",
    "reply.title": "Answer the client", "reply.channel": "Channel", "reply.email": "Email",
    "reply.subject": "Subject", "reply.text": "Text", "reply.send": "Send",
    "reply.empty": "Write some text", "reply.queued": "Sending — it will appear in the timeline",
    "reply.inThread": "A reply in the thread “{subject}”", "reply.answer": "Reply",
    "lead.back": "← All leads", "lead.why": "Why this owner", "lead.client": "Client",
    "lead.priority": "Priority", "lead.tags": "Tags", "lead.queue": "Queue",
    "outcome.answered": "Answered", "outcome.missed": "Missed", "outcome.busy": "Busy",
    "outcome.failed": "Failed", "outcome.no_answer": "No answer",
    "deals.title": "Deal pipeline", "deals.move": "Stage", "deals.client": "Client",
    "deals.moved": "Deal moved: {stage}", "deals.total": "{n} {deals} · {sum}",
    "deals.forms": "deal|deals|deals",
    "tasks.title": "Tasks", "tasks.overdue": "Overdue", "tasks.today": "Due today",
    "tasks.done": "Done", "tasks.snooze": "Snooze", "tasks.due": "Due",
    "tasks.15": "for 15 minutes", "tasks.60": "for 1 hour", "tasks.1440": "until tomorrow",
    "tasks.marked": "Task done", "tasks.snoozed": "Task snoozed",
    "tkind.call_back": "Call back", "tkind.send_offer": "Send an offer",
    "tkind.offer_discount": "Offer a discount", "tkind.check_payment": "Check payment",
    "tkind.send_documents": "Send documents", "tkind.other": "Other",
    "call.button": "Call", "call.number": "Number",
    "call.started": "Calling: your phone first, then the client",
    "live.title": "Events", "live.notify": "Enable notifications",
    "live.online": "● online", "live.offline": "○ reconnecting…",
    "live.newCall": "New caller", "live.incoming": "Incoming call",
    "live.owner": "Owner", "live.openDeals": "Open deals",
    "live.last": "Last interactions", "live.openClient": "Client card",
    "live.openLead": "Open lead", "live.newLead": "New lead: {title}",
    "live.newMessage": "New message ({channel}): {preview}",
    "live.callState": "Call {caller}: {state}", "live.reminder": "Reminder: {title}",
    "live.outbox": "Outbound ({channel}): {status}", "live.sla": "SLA: {text}",
    "cs.call_started": "ringing", "cs.call_answered": "answered", "cs.call_missed": "missed",
    "cs.call_ended": "ended",
  },
};

for (const [code, table] of Object.entries(PROFILE_STRINGS)) Object.assign(STRINGS[code], table);

export const LANGS = Object.keys(STRINGS);
const KEY = "crmhub.lang";
let lang = STRINGS[localStorage.getItem(KEY)] ? localStorage.getItem(KEY) : "ru";
const listeners = new Set();

export function getLang() {
  return lang;
}

export function setLang(next) {
  if (!STRINGS[next] || next === lang) return;
  lang = next;
  localStorage.setItem(KEY, next);
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/** The string for `key` in the current language, `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.ru[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** Like `t`, but falls back to `fallback` (e.g. the raw code) for an unknown key. */
export function tOr(key, fallback) {
  return STRINGS[lang][key] ?? STRINGS.ru[key] ?? fallback;
}

/** Translate the static markup: `data-i18n` (text) and `data-i18n-placeholder`. */
export function translateStatic(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-lang-switch]")) {
    el.textContent = lang === "ru" ? "English" : "Русский";
    el.setAttribute("aria-label", lang === "ru" ? "Switch to English" : "Переключить на русский");
  }
}

/** The plural form of `n` from "one|few|many" (Russian rules; English uses one/many). */
export function plural(n, key) {
  const [one, few, many] = t(key).split("|");
  const a = Math.abs(n) % 100;
  const b = a % 10;
  if (lang === "en") return n === 1 ? one : many;
  if (a > 10 && a < 20) return many;
  if (b === 1) return one;
  if (b >= 2 && b <= 4) return few;
  return many;
}
