"""Russian wording of the REST API's error messages (``"error_ru"`` beside ``"error"``).

Our users read Russian first; the operator UI shows ``error_ru`` when it speaks Russian.
Messages are English f-strings raised all over the services, so the catalogue matches
them by pattern (the values they carry - ids, names, fields - are kept); a message with
no pattern here has no ``error_ru`` and the UI shows the English one.  A pydantic
validation message (``"field: Input should be ..."``) is translated by its tail.
"""

from __future__ import annotations

import re

__all__ = ["russian"]

_ENTITY = {
    "client": "клиент",
    "lead": "лид",
    "deal": "сделка",
    "task": "задача",
    "call": "звонок",
    "email": "письмо",
    "message": "сообщение",
    "attachment": "вложение",
    "user": "сотрудник",
    "interaction": "запись истории",
    "phone": "телефон",
    "import": "импорт",
    "pipeline": "воронка",
    "job": "задание",
    "segment": "сегмент",
    "status": "статус",
    "contact": "контактное лицо",
    "session": "сеанс",
    "token": "токен",
    "campaign": "рассылка",
}
_NOT_FOUND = {
    "сделка": "не найдена",
    "воронка": "не найдена",
    "задача": "не найдена",
    "задание": "не найдено",
    "запись истории": "не найдена",
    "письмо": "не найдено",
    "сообщение": "не найдено",
    "вложение": "не найдено",
    "контактное лицо": "не найдено",
    "рассылка": "не найдена",
}
_ROLES = {"admins": "администратор", "supervisors": "руководитель", "managers": "менеджер"}
_STATE = {
    "won": "выиграна",
    "lost": "проиграна",
    "converted": "конвертирован",
    "rejected": "отклонён",
    "done": "выполнена",
    "cancelled": "отменена",
}

_CATALOGUE: list[tuple[str, str]] = [
    (r"(?P<what>\w+) (?P<id>\S+) not found", "{what_ru} {id} {not_found}"),
    (r"attachment (?P<id>\S+) is not stored", "вложение {id} не сохранено"),
    (r"the body must be a JSON object.*", "тело запроса должно быть JSON-объектом"),
    (r"malformed JSON body: .*", "тело запроса — не JSON"),
    (r"the body is larger than (?P<n>\d+) MiB", "тело запроса больше {n} МБ"),
    (
        r"the body is larger than (?P<n>\d+) MiB: files up to (?P<f>\d+) MiB in all",
        "тело запроса больше {n} МБ: файлы — не больше {f} МБ в сумме",
    ),
    (
        r"the JSON body is nested deeper than (?P<n>\d+) levels",
        "вложенность JSON глубже {n} уровней",
    ),
    (r"the input is nested too deeply", "слишком глубокая вложенность данных"),
    (r"(?:files|attachments) larger than (?P<n>\d+) MiB in all", "файлы больше {n} МБ в сумме"),
    (
        r"only admins and supervisors may list users",
        "список сотрудников доступен только администраторам и руководителям",
    ),
    (r"only (?P<roles>[\w ]+) may do this", "это доступно только ролям: {roles}"),
    # admin pages: users and website forms
    (r"only admins may manage website forms", "веб-формами управляют только администраторы"),
    (
        r"only admins and supervisors may change users",
        "менять сотрудников могут только администраторы и руководители",
    ),
    (r"you may not change (?P<f>\w+)", "вы не можете менять поле {f}"),
    (r"you cannot take the admin role from yourself", "нельзя снять с себя роль администратора"),
    (r"timezone (?P<tz>.+) is not an IANA time zone", "часовой пояс {tz} не найден в базе IANA"),
    (r"locale must be ru or en", "язык: ru или en"),
    (
        r"working_hours\b.*",
        'рабочие часы заданы неверно: дни 0 (пн)–6 (вс), окна вида ["09:00", "18:00"]',
    ),
    (
        r"absences\b.*",
        "отсутствия заданы неверно: {{start, end, reason}}, даты ГГГГ-ММ-ДД, начало не позже конца",
    ),
    (r"capacity must be .*", "нагрузка — целое число не меньше 0 или пусто"),
    (r"weight must be .*", "вес — целое число от 1 до 100"),
    (r"aliases\b.*", "соответствия полей: поле сайта → поле crmhub (не больше 100)"),
    (r"honeypot_fields\b.*", "поля-ловушки: список имён полей (не больше 20)"),
    (
        r"email sending is not configured: add an \[smtp\] section",
        "отправка писем не настроена: нужен раздел [smtp]",
    ),
    (r"no PBX is configured.*", "АТС не настроена (раздел [[asterisk]])"),
    (
        r"no PBX named (?P<name>'[^']*'); configured: (?P<names>.*)",
        "нет АТС {name}; настроены: {names}",
    ),
    (
        r"you have no phone extension: ask an admin to set one",
        "у вас нет внутреннего номера: попросите администратора его указать",
    ),
    (
        r"this client has not written from Telegram or VK yet",
        "клиент ещё не писал в Telegram или ВКонтакте",
    ),
    (
        r"the client cannot be reached on (?P<ch>\w+): (?P<why>.*)",
        "клиенту нельзя написать в {ch}: {why}",
    ),
    (
        r"the last (?P<ch>\w+) message names no chat to answer",
        "в последнем сообщении {ch} нет чата для ответа",
    ),
    (
        r"no recipient: give `to` or a client with an email address",
        "нет получателя: укажите адрес или добавьте клиенту почту",
    ),
    (r"an email needs `text` or `html`", "в письме нужен текст"),
    (r"`text` is empty", "текст пустой"),
    (r"give client_id, lead_id or deal_id", "укажите клиента, лида или сделку"),
    (r"give one of (?P<x>[\w, ]+)", "укажите одно из: {x}"),
    (r"give `number` or one of (?P<x>[\w, ]+)", "укажите номер или одно из: {x}"),
    (r"interaction (?P<id>\d+) is not an email", "запись {id} — не письмо"),
    (r"(?P<h>Idempotency-Key) (?P<key>'.*') is already used", "{h} {key} уже использован"),
    (
        r"(?P<h>Idempotency-Key) must be 1-(?P<n>\d+) characters of (?P<chars>.*)",
        "{h}: от 1 до {n} символов из {chars}",
    ),
    (r"a user with email (?P<email>\S+) already exists", "сотрудник с почтой {email} уже есть"),
    (r"extension (?P<ext>\S+) is already taken", "внутренний номер {ext} уже занят"),
    (
        r"inn (?P<inn>\S+) already belongs to another client",
        "ИНН {inn} уже принадлежит другому клиенту",
    ),
    (r"inn (?P<inn>\S+) fails its checksum", "ИНН {inn} не проходит проверку контрольной суммы"),
    (r"inn must be 10 or 12 digits", "ИНН должен состоять из 10 или 12 цифр"),
    # the business profile (services/clients.py, requisites.py, statuses.py, custom_fields.py)
    (
        r"inn (?P<inn>\S+) with kpp (?P<kpp>\S+) already belongs to another client",
        "ИНН {inn} с КПП {kpp} уже принадлежит другому клиенту",
    ),
    (
        r"kpp must be 9 characters: .*",
        "КПП — 9 знаков: 4 цифры, 2 цифры или латинские буквы A-Z, 3 цифры",
    ),
    (r"kpp needs an inn", "КПП указывается вместе с ИНН"),
    (r"kpp is only for an organisation.*", "КПП бывает только у организации (ИНН из 10 цифр)"),
    (r"(?P<f>kpp|parent_id) is only for a company", "{f}: только для компании"),
    (r"birthday is only for a person", "день рождения указывается только у человека"),
    (r"birthday must be a date \(YYYY-MM-DD\)", "день рождения — дата ГГГГ-ММ-ДД"),
    (
        r"birthday must be a date between 1900 and today",
        "день рождения — дата от 1900 года до сегодняшнего дня",
    ),
    (r"ogrn must be 13 digits.*", "ОГРН — 13 цифр (ОГРНИП — 15)"),
    (r"ogrn (?P<v>\S+) fails its check digit", "ОГРН {v} не проходит проверку контрольной цифры"),
    (r"website is not a web address", "сайт — не веб-адрес"),
    (r"headcount must be a whole number, 0 or more", "численность — целое число от 0"),
    (r"revenue must be a number, 0 or more", "выручка — число от 0"),
    (r"tags must be a list of strings", "теги — список строк"),
    (r"tags: a tag is longer than 100 characters", "теги: тег длиннее 100 символов"),
    (r"tags: at most (?P<n>\d+)", "теги: не больше {n}"),
    (r"parent_id: client (?P<id>\d+) not found", "parent_id: клиент {id} не найден"),
    (r"parent_id must be a company", "головная организация должна быть компанией"),
    (
        r"parent_id would make a cycle of companies",
        "головная организация создала бы цикл (компания не может владеть своим владельцем)",
    ),
    (r"status must be one of (?P<x>.*)", "статус должен быть одним из: {x}"),
    (r"status (?P<k>\S+) already exists", "статус {k} уже есть"),
    (
        r"status (?P<k>\S+) is used by (?P<n>\d+) clients: .*",
        "статус {k} есть у клиентов ({n}): его можно только отключить",
    ),
    (r"at least one status must stay active", "хотя бы один статус должен остаться активным"),
    (r"key must be 1-(?P<n>\d+) characters .*", "ключ: 1-{n} символов a-z, 0-9, _ (с буквы)"),
    (r"(?P<f>name_ru|name_en|label_ru) must not be empty", "{f}: нужно название"),
    (r"(?P<f>name_ru|name_en|label_ru) is required", "{f}: нужно название"),
    (r"custom field (?P<id>\S+) not found", "дополнительное поле {id} не найдено"),
    (r"custom field (?P<k>\S+) already exists", "дополнительное поле {k} уже есть"),
    (
        r"custom field (?P<k>\S+) has values in (?P<n>\d+) clients: its type cannot change",
        "поле {k} заполнено у клиентов ({n}): его тип менять нельзя",
    ),
    (
        r"custom field (?P<k>\S+) has values in (?P<n>\d+) clients: deactivate it instead",
        "поле {k} заполнено у клиентов ({n}): его можно только отключить",
    ),
    (r"type must be one of (?P<x>.*)", "тип должен быть одним из: {x}"),
    (r"options must be a non-empty list of strings", "варианты — непустой список строк"),
    (r"(?P<f>(?:custom|cf)\.\w+): no such custom field", "{f}: нет такого дополнительного поля"),
    (r"(?P<f>custom\.\w+) is required", "{f}: обязательное поле"),
    (r"(?P<f>custom\.\w+) must be text", "{f}: нужен текст"),
    (r"(?P<f>custom\.\w+) must be a number", "{f}: нужно число"),
    (r"(?P<f>custom\.\w+) must be a date \(YYYY-MM-DD\)", "{f}: нужна дата ГГГГ-ММ-ДД"),
    (r"(?P<f>custom\.\w+) must be one of (?P<x>.*)", "{f}: одно из значений: {x}"),
    (r"(?P<f>custom\.\w+) must be a list of (?P<x>.*)", "{f}: список из значений: {x}"),
    (r"(?P<f>custom\.\w+) is longer than (?P<n>\d+) characters", "{f}: длиннее {n} символов"),
    (r"(?P<f>cf\.\w+) must be a value or a range a\.\.b", "{f}: значение или диапазон a..b"),
    (r"at most (?P<n>\d+) cf\. filters", "не больше {n} фильтров cf."),
    (r"(?P<f>\w+) must be a number", "{f}: нужно число"),
    (r"must not contain the NUL character", "не должно содержать символ NUL (\\x00)"),
    (r"sort must be one of (?P<x>.*) \(- for descending\)", "sort: одно из {x} (- — по убыванию)"),
    (
        r"(?P<what>deal|lead|task) (?P<id>\d+) is already (?P<state>\w+)",
        "{what_ru} {id} уже {state_ru}",
    ),
    (
        r"(?P<kind>phone|email) (?P<v>\S+) already belongs to .*",
        "{kind_ru} {v} уже принадлежит другому клиенту или лиду",
    ),
    (
        r"you may not assign work to user (?P<id>\d+)",
        "вы не можете назначать работу сотруднику {id}",
    ),
    (r"user (?P<id>\d+) does not exist", "сотрудника {id} нет"),
    (r"user (?P<id>\d+) is not active", "сотрудник {id} неактивен"),
    (r"a lost deal needs a reason: use /lose", "для проигранной сделки нужна причина"),
    (r"a reason is required", "нужна причина"),
    (r"amount must be a number", "сумма должна быть числом"),
    (r"amount must be between .*", "сумма вне допустимого диапазона"),
    (
        r"give at least a name, a company, a phone or an email",
        "укажите имя, компанию, телефон или почту",
    ),
    (r"give either due_at or due_local", "укажите срок одним способом: due_at или due_local"),
    (r"give one of until, until_local or minutes", "укажите, до какого времени отложить"),
    (
        r"give one of remind_at, remind_local or remind_before",
        "укажите время напоминания одним способом",
    ),
    (r"remind_before needs a due time", "для напоминания «за N минут» нужен срок"),
    (r"the reminder must not come after the due time", "напоминание не может быть позже срока"),
    (
        r"give exactly one of client_ids, segment_id or filters",
        "укажите что-то одно: client_ids, segment_id или filters",
    ),
    (
        r"filters\.(?P<f>\w+) is not supported by mass operations",
        "фильтр {f} не поддерживается в массовых операциях",
    ),
    (r"segment (?P<id>\d+) does not exist", "сегмента {id} нет"),
    (r"segment (?P<id>\d+) is not a manual segment", "сегмент {id} — не ручной"),
    (r"rule segments cannot be selected yet", "сегменты по правилам пока нельзя выбрать"),
    (r"mode must be add or remove", "mode: add (добавить) или remove (убрать)"),
    (r"give tags to add or to remove", "укажите метки, которые добавить или убрать"),
    (r"status must be one of (?P<x>.*)", "статус должен быть одним из: {x}"),
    (r"kind must be one of (?P<x>.*)", "тип должен быть одним из: {x}"),
    (r"due must be one of (?P<x>.*)", "due должен быть одним из: {x}"),
    (r"preset must be one of (?P<x>.*)", "preset должен быть одним из: {x}"),
    (r"the new time must be in the future", "новое время должно быть в будущем"),
    (r"name is required|name must not be empty", "нужно имя"),
    (r"title must not be empty", "нужно название"),
    (r"the lead has no name: give the client's name", "у лида нет имени: укажите имя клиента"),
    (r"not valid base64", "файл не в base64"),
    (r"the file is empty", "файл пустой"),
    (r"larger than (?P<n>\d+) MiB", "больше {n} МБ"),
    (r"phone is empty", "телефон пустой"),
    (r"phone is too long \((?P<n>\d+) characters\)", "телефон слишком длинный ({n} симв.)"),
    (r"phone '(?P<v>.*)' has too few digits", "в номере «{v}» слишком мало цифр"),
    (r"phone '(?P<v>.*)' is not a valid number.*", "«{v}» — не телефонный номер"),
    (r"email is empty", "адрес почты пустой"),
    (r"email is too long.*", "адрес почты слишком длинный"),
    (r"email '(?P<v>.*)' is not valid.*", "«{v}» — неверный адрес почты"),
    (
        r"the change conflicts with existing data.*",
        "изменение противоречит существующим данным (дубликат?)",
    ),
    (r"internal error; the change was not saved", "внутренняя ошибка; изменение не сохранено"),
    (
        r"the request body is malformed \(multipart or HTTP framing\)",
        "тело запроса повреждено (multipart или HTTP-разметка)",
    ),
    (r"interaction (?P<id>\d+) has no recording", "у звонка {id} нет записи"),
    (
        r"the recording of interaction (?P<id>\d+) is not readable by crmhub",
        "запись звонка {id} недоступна crmhub (проверьте recordings_dir)",
    ),
    (r"the recording is not on the recording server", "записи нет на сервере записей"),
    (r"requested range not satisfiable", "запрошенный диапазон байт недоступен"),
    (r"the recording server answered HTTP (?P<n>\d+)", "сервер записей ответил HTTP {n}"),
    (r"the recording server is unreachable: .*", "сервер записей недоступен"),
    (
        r"the database is busy; the change was not saved, retry after Retry-After seconds",
        "база данных занята; изменение не сохранено, повторите через Retry-After секунд",
    ),
    (r"you cannot deactivate yourself", "нельзя отключить самого себя"),
    (r"this user is deactivated", "этот сотрудник отключён"),
    (r"no user with email (?P<email>\S+)", "нет сотрудника с почтой {email}"),
    (
        r"expected an ISO date \(2026-01-31\) or datetime",
        "нужна дата ISO (2026-01-31) или дата и время",
    ),
    (
        r"after must be the next_after of a previous page",
        "after должен быть значением next_after предыдущей страницы",
    ),
    (r"import (?P<id>\d+) is (?P<s>\w+), not done", "импорт {id} уже не в силе ({s})"),
    (
        r"import (?P<id>\d+) is a dry run: nothing to undo",
        "импорт {id} был проверкой: отменять нечего",
    ),
    (r"no user with email (?P<email>\S+)", "нет сотрудника с почтой {email}"),
    (r"file is required", "нужен файл (поле file)"),
    (r"the body must be multipart/form-data.*", "тело должно быть multipart/form-data"),
    # sales plans and analytics (issue 13)
    (
        r"(?P<f>\w+) must be a month \(2026-12\) or a quarter \(2026-Q4\)",
        "{f}: нужен месяц (2026-12) или квартал (2026-Q4)",
    ),
    (r"(?P<f>[\w.]+) must be a whole number", "{f}: нужно целое число"),
    (r"(?P<f>[\w.]+) must be between (?P<a>\S+) and (?P<b>\S+)", "{f}: от {a} до {b}"),
    (r"(?P<f>[\w.]+) must be a number", "{f}: нужно число"),
    (r"(?P<f>[\w.]+) must be a team name", "{f}: нужно название команды"),
    (r"(?P<f>[\w.]+): give either user_id or team", "{f}: укажите user_id или team, одно из двух"),
    (r"(?P<f>[\w.]+): (?P<s>\S+) is given twice", "{f}: {s} указан дважды"),
    (r"user (?P<id>\d+) is not a manager", "сотрудник {id} — не менеджер"),
    (r"you may not plan for user (?P<id>\d+)", "вы не можете задавать план сотруднику {id}"),
    (r"you may not plan for team (?P<t>.+)", "вы не можете задавать план команде {t}"),
    (
        r"only admins and supervisors set plans",
        "планы задают только администраторы и руководители",
    ),
    (r"unknown part (?P<p>.*) \(expected .*\)", "неизвестная часть {p}"),
    (r"file is more than the limit of (?P<n>\d+) bytes", "файл больше предела {n} байт"),
    (r"(?P<f>\w+) is longer than 64 KB", "{f} длиннее 64 КБ"),
    (
        r"(?P<f>\S+): text must not contain NUL \(\\u0000\) characters",
        "{f}: в тексте не может быть символа NUL (\\u0000)",
    ),
    # pipelines and deals (docs/deals.md)
    (
        r"a reason from the loss-reason catalogue is required",
        "нужна причина из справочника причин проигрыша",
    ),
    (
        r"loss reason (?P<id>\d+) is not in this pipeline",
        "причины {id} нет в справочнике этой воронки",
    ),
    (r"reason must be one of the catalogue: (?P<x>.*)", "причина должна быть из справочника: {x}"),
    (r"stage must be one of (?P<x>.*)", "этап должен быть одним из: {x}"),
    (
        r"amount is the sum of the items: .*",
        "сумма считается по позициям сделки: меняйте позиции",
    ),
    (r"deal (?P<id>\d+) is not closed", "сделка {id} не закрыта"),
    (r"a pipeline named (?P<n>.*) exists", "воронка {n} уже есть"),
    (
        r"stage (?P<c>'.*') holds (?P<n>\d+) deals: move them first",
        "на этапе {c} есть сделки ({n}): сначала перенесите их",
    ),
    (
        r"pipeline (?P<id>\d+) holds (?P<n>\d+) deals: move them first",
        "в воронке {id} есть сделки ({n}): сначала перенесите их",
    ),
    (r"the default pipeline cannot be deleted", "основную воронку удалить нельзя"),
    (r"make another pipeline the default instead", "сделайте основной другую воронку"),
    (r"stages must hold at least one open stage", "нужен хотя бы один открытый этап"),
    (
        r"loss_reasons must keep at least one active reason",
        "нужна хотя бы одна действующая причина проигрыша",
    ),
    (r"(?P<f>[\w.]+) is used twice", "{f}: повторяется"),
    (r"(?P<f>[\w.]+) must not be empty", "{f}: не может быть пустым"),
    (r"(?P<f>[\w.]+) must be a number", "{f}: нужно число"),
    (r"(?P<f>[\w.]+) must be between (?P<a>\S+) and (?P<b>\S+)", "{f}: от {a} до {b}"),
    (r"(?P<f>[\w.]+) must be more than 0", "{f}: больше нуля"),
    (
        r"(?P<f>[\w.]+) is required to enter the stage .*",
        "поле {f} обязательно для этого этапа",
    ),
    # export and merge (crm_core/services/export.py, merge.py)
    (
        r"segment (?P<id>\d+) is a rule segment: export supports manual segments only",
        "сегмент {id} задан правилами: выгрузка пока поддерживает только ручные сегменты",
    ),
    (
        r"other_id must be another client than the one kept",
        "other_id: нужен другой клиент, не тот, что остаётся",
    ),
    (r"the KPP follows the INN \(choose inn\)", "вместе с ИНН переносится и КПП (выберите inn)"),
    (r"unknown field \(known: (?P<k>.*)\)", "неизвестное поле (допустимы: {k})"),
    (r"must be 'this' or 'other'", "допустимы 'this' или 'other'"),
    (r"filter: expected KEY=VALUE, got (?P<v>.*)", "filter: нужно КЛЮЧ=ЗНАЧЕНИЕ, а не {v}"),
    # sign-in (gateway/auth.py, gateway/api/auth.py, crm_core/services/auth.py)
    (r"wrong email or password", "неверная почта или пароль"),
    (
        r"too many failed sign-ins: try again in (?P<n>\d+) seconds",
        "слишком много неудачных попыток входа: попробуйте снова через {n} с",
    ),
    (
        r"missing or wrong X-CSRF-Token header: .*",
        "нет заголовка X-CSRF-Token или он неверен: изменения в сеансе входа требуют CSRF-токен сеанса",
    ),
    (
        r"authentication required: sign in, or send Authorization: Bearer <token>",
        "нужно войти (или передать заголовок Authorization: Bearer <токен>)",
    ),
    (r"your session has ended: sign in again", "сеанс завершён: войдите снова"),
    (r"invalid API token", "неверный API-токен"),
    (r"this API token has expired", "срок действия API-токена истёк"),
    (
        r"this API token has the read scope: it may only read \(GET\)",
        "у этого API-токена доступ только на чтение: разрешены лишь запросы GET",
    ),
    (
        r"this link is not valid: ask your administrator for a new one",
        "ссылка недействительна: попросите у администратора новую",
    ),
    (r"this link was already used: ask for a new one", "ссылка уже использована: запросите новую"),
    (r"this link has expired: ask for a new one", "срок действия ссылки истёк: запросите новую"),
    (r"at least (?P<n>\d+) characters, please", "не короче {n} символов"),
    (r"at most (?P<n>\d+) characters", "не длиннее {n} символов"),
    (r"too simple, it repeats a few characters", "слишком простой: повторяет несколько символов"),
    (
        r"this is one of the most common passwords, choose another",
        "это один из самых распространённых паролей, выберите другой",
    ),
    (r"must not be your email", "не должен совпадать с вашей почтой"),
    (r"password must be a string", "пароль должен быть строкой"),
    (r"the current password is wrong", "текущий пароль неверен"),
    (
        r"changing the password needs a signed-in session, not an API token",
        "сменить пароль можно только после входа в систему, не по API-токену",
    ),
    (
        r"making an API token needs a signed-in session, not an API token",
        "создать API-токен можно только после входа в систему, не по API-токену",
    ),
    (r"(?P<a>\d+) to (?P<b>\d+) characters", "от {a} до {b} символов"),
    (r"must be in the future", "должно быть в будущем"),
    (r"at most ten years ahead", "не дальше чем на десять лет вперёд"),
    (
        r"give a time zone \(e\.g\. (?P<e>\S+)\)",
        "укажите часовой пояс (например, {e})",
    ),
    (
        r"this user is deactivated: activate the user first",
        "сотрудник отключён: сначала включите его",
    ),
    # two-factor sign-in (issue 16)
    (
        r"two-factor sign-in is already on; turn it off first",
        "двухфакторный вход уже включён; сначала выключите его",
    ),
    (r"two-factor sign-in is already on", "двухфакторный вход уже включён"),
    (r"two-factor sign-in is not on", "двухфакторный вход не включён"),
    (r"start the enrolment first \(two-factor/setup\)", "сначала начните подключение"),
    (
        r"the code is wrong or expired: enter the current code from the app",
        "код неверный или устарел: введите текущий код из приложения",
    ),
    (r"the code is wrong or already used", "код неверный или уже использован"),
    (
        r"the sign-in step expired or was already used: sign in again",
        "шаг входа устарел или уже пройден: войдите заново",
    ),
    (
        r"two-factor sign-in is required for your role: it cannot be turned off",
        "для вашей роли двухфакторный вход обязателен: выключить его нельзя",
    ),
    (
        r"two-factor settings need a signed-in session, not an API token",
        "двухфакторный вход настраивается только после входа в систему, не по API-токену",
    ),
    (r"the password is wrong", "пароль неверен"),
    # email consent (the client card)
    (r"(?P<e>\S+) is not an email of client (?P<id>\d+)", "{e} — не адрес клиента {id}"),
    (r"email (?P<e>.+) is not a valid address", "адрес {e} некорректен"),
    (
        r"(?P<e>\S+) unsubscribed itself: say in the note why consent is granted again",
        "адрес {e} отписался сам: напишите в заметке, почему согласие дано снова",
    ),
    (
        r"(?P<e>\S+) bounced \(.*\): say in the note why consent is granted again",
        "почтовый сервер сообщил, что адреса {e} нет: напишите в заметке, почему согласие "
        "дано снова",
    ),
    (
        r"(?P<e>\S+) complained of spam: say in the note why consent is granted again",
        "получатель {e} пожаловался на спам: напишите в заметке, почему согласие дано снова",
    ),
    (r"note must be at most (?P<n>\d+) characters", "заметка — не длиннее {n} символов"),
    # campaigns
    (
        r"(?P<f>subject|html|text): template error on line (?P<n>\d+): (?P<m>.*)",
        "{f}: ошибка в шаблоне, строка {n}: {m}",
    ),
    (r"(?P<f>subject|html|text): line (?P<n>\d+): (?P<m>.*)", "{f}: строка {n}: {m}"),
    (r"subject is empty", "тема письма пустая"),
    (r"a campaign needs html or text", "у рассылки должен быть текст или HTML"),
    (
        r"only admins and supervisors send campaigns",
        "рассылки отправляют только администраторы и руководители",
    ),
    (r"give segment_ids, filter or client_ids", "укажите segment_ids, filter или client_ids"),
    (
        r"exclude_contacted_days must be a positive number of days",
        "exclude_contacted_days — положительное число дней",
    ),
    (r"addresses must be one of (?P<v>.*)", "addresses — одно из: {v}"),
    (r"(?P<f>\w+): segment (?P<id>\d+) does not exist", "{f}: сегмента {id} нет"),
    (r"segment (?P<id>\d+) no longer exists", "сегмента {id} больше нет"),
    (r"smtp_account (?P<a>.+) is not configured", "почтовый аккаунт {a} не настроен"),
    (r"no SMTP account is configured", "почтовый аккаунт для рассылок не настроен"),
    (r"SMTP account (?P<a>'[^']*'): (?P<m>.*)", "почтовый аккаунт {a}: {m}"),
    (
        r"campaign (?P<id>\d+) is (?P<s>\w+): only a draft can be edited",
        "рассылка {id} в состоянии {s}: менять можно только черновик",
    ),
    (
        r"campaign (?P<id>\d+) is (?P<s>\w+), not a draft",
        "рассылка {id} в состоянии {s}, а не черновик",
    ),
    (
        r"campaign (?P<id>\d+) is (?P<s>\w+): nothing to pause",
        "рассылка {id} в состоянии {s}: приостанавливать нечего",
    ),
    (
        r"campaign (?P<id>\d+) is (?P<s>\w+), not paused",
        "рассылка {id} в состоянии {s}, а не на паузе",
    ),
    (r"campaign (?P<id>\d+) is already (?P<s>\w+)", "рассылка {id} уже в состоянии {s}"),
    (
        r"the audience is empty: no client with an email address matches",
        "аудитория пуста: ни у одного подходящего клиента нет адреса email",
    ),
    (r"send_at must be an ISO date and time", "send_at — дата и время в формате ISO"),
    (
        r"send_at needs a time zone \(e\.g\. \+03:00 or Z\)",
        "в send_at нужен часовой пояс (например, +03:00 или Z)",
    ),
    (r"name must be 1-200 characters", "название — от 1 до 200 символов"),
]
_COMPILED = [(re.compile(rf"^(?:{p})$", re.DOTALL), ru) for p, ru in _CATALOGUE]

# pydantic's own messages, after "field: "
_PYDANTIC: list[tuple[str, str]] = [
    (r"Field required", "обязательное поле"),
    (r"Extra inputs are not permitted", "неизвестное поле"),
    (r"Input should be a valid integer.*", "нужно целое число"),
    (r"Input should be a valid number.*", "нужно число"),
    (r"Input should be a valid string", "нужна строка"),
    (r"Input should be a valid boolean.*", "нужно true или false"),
    (r"Input should be a valid list", "нужен список"),
    (
        r"Input should be a valid datetime.*|Input should have timezone info",
        "нужны дата и время с часовым поясом",
    ),
    (r"Input should be (?P<choices>'.*)", "допустимые значения: {choices}"),
    (r"Input should be greater than or equal to (?P<n>\S+)", "не меньше {n}"),
    (r"Input should be less than or equal to (?P<n>\S+)", "не больше {n}"),
    (r"String should have at least (?P<n>\d+) characters?", "не короче {n} симв."),
    (r"String should have at most (?P<n>\d+) characters?", "не длиннее {n} симв."),
    (r"List should have at most (?P<n>\d+) items.*", "не больше {n} элементов"),
    (r"Dictionary should have at most (?P<n>\d+) items.*", "не больше {n} элементов"),
    (r"Input should be less than (?P<n>\S+)", "меньше {n}"),
    (r"Input should be a valid dictionary.*", "нужен объект"),
    (r"Input should be a valid decimal", "нужно число"),
    (r"Decimal input should be .*", "нужно число"),
    (r"String should match pattern .*", "неверный формат"),
]
_PYD = [(re.compile(rf"^(?:{p})$", re.DOTALL), ru) for p, ru in _PYDANTIC]
_FIELD_MSG = re.compile(r"^(?P<field>[\w.\[\]-]+): (?P<rest>.+)$", re.DOTALL)


def _fill(template: str, m: re.Match[str]) -> str:
    groups = {k: v or "" for k, v in m.groupdict().items()}
    for key in ("what", "kind"):
        if key in groups:
            groups[f"{key}_ru"] = _ENTITY.get(groups[key], groups[key])
    if "what_ru" in groups:
        groups["not_found"] = _NOT_FOUND.get(groups["what_ru"], "не найден")
    if "state" in groups:
        groups["state_ru"] = _STATE.get(groups["state"], groups["state"])
    if "roles" in groups:
        for en, ru in _ROLES.items():
            groups["roles"] = groups["roles"].replace(en, ru)
        groups["roles"] = groups["roles"].replace(" and ", ", ")
    if "choices" in groups:
        groups["choices"] = groups["choices"].replace("' or '", "' или '")
    text = template.format(**groups)
    if "\u0400" <= text[:1] <= "\u04ff":  # a Russian sentence starts with a capital
        text = text[:1].upper() + text[1:]
    return text


def russian(message: str) -> str | None:
    """The Russian wording of an API error message, or None when there is none."""
    text = message.strip()
    for pattern, ru in _COMPILED:
        if m := pattern.match(text):
            return _fill(ru, m)
    if fm := _FIELD_MSG.match(text):
        rest = fm["rest"]
        if rest.startswith("Value error, "):  # a validator of ours: its own wording
            inner_ru = russian(rest.removeprefix("Value error, "))
        else:
            inner_ru = next((_fill(ru, m) for p, ru in _PYD if (m := p.match(rest))), None)
            inner_ru = inner_ru or russian(rest)
        if inner_ru is not None:
            first = inner_ru[:1]
            if "\u0400" <= first <= "\u04ff":
                inner_ru = first.lower() + inner_ru[1:]
            return f"{fm['field']}: {inner_ru}"
    return None
