"""The rules of a rule segment: validated, then compiled into ONE SQL condition on
``clients`` (EXISTS subqueries for tags and deals, JSON extraction for custom fields),
evaluated live by the database on SQLite and PostgreSQL alike.

A rule set is a group ``{"all": [...]}`` or ``{"any": [...]}`` whose items are
conditions ``{"field", "op", "value"}`` or nested groups.  Input is hostile: depth,
the number of conditions, list and string lengths are capped, and every refusal is a
:class:`RuleError` naming the path of the offending item (``rules.all[2].op``) in
English and Russian.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from crm_core.models import Client, ClientTag, Deal, utcnow
from crm_core.services.common import ServiceError

__all__ = [
    "FIELDS",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "OPS",
    "RuleError",
    "compile_rules",
    "field_catalogue",
]

OPS = ("eq", "ne", "in", "contains", "gte", "lte", "exists")
MAX_DEPTH = 6  # nested groups, the top one included
MAX_CONDITIONS = 100
MAX_LIST = 500
MAX_TEXT = 200
WON_STAGE = "won"
CF_PREFIX = "cf."


class RuleError(ServiceError):
    """A rule set the segments refuse (answered 400): ``field`` is the path of the item."""

    def __init__(self, path: str, message: str, message_ru: str) -> None:
        super().__init__(f"{path}: {message}", path)
        self.message_ru = f"{path}: {message_ru}"


# Value types: text, int, number, days (a number of days), user (an id), bool, tags,
# date (ISO yyyy-mm-dd), multi (a custom multi-choice: a list of texts).
@dataclass(frozen=True, slots=True)
class FieldSpec:
    type: str
    ops: tuple[str, ...]
    label_en: str
    label_ru: str


_TEXT_OPS = ("eq", "ne", "in", "contains", "exists")
_NUM_OPS = ("eq", "ne", "in", "gte", "lte", "exists")
_SET_OPS = ("contains", "in", "exists")

FIELDS: dict[str, FieldSpec] = {
    "kind": FieldSpec("text", ("eq", "ne", "in"), "kind", "вид"),
    "status": FieldSpec("text", ("eq", "ne", "in"), "status", "статус"),
    "name": FieldSpec("text", _TEXT_OPS, "name", "название"),
    "inn": FieldSpec("text", _TEXT_OPS, "INN", "ИНН"),
    "industry": FieldSpec("text", _TEXT_OPS, "industry", "отрасль"),
    "activity": FieldSpec("text", _TEXT_OPS, "kind of activity", "вид деятельности"),
    "region": FieldSpec("text", _TEXT_OPS, "region", "регион"),
    "city": FieldSpec("text", _TEXT_OPS, "city", "город"),
    "source": FieldSpec("text", _TEXT_OPS, "source", "источник"),
    "headcount": FieldSpec("int", _NUM_OPS, "headcount", "численность"),
    "revenue": FieldSpec("number", _NUM_OPS, "annual revenue", "годовая выручка"),
    "owner": FieldSpec("user", ("eq", "ne", "in", "exists"), "owner", "ответственный"),
    "tags": FieldSpec("tags", _SET_OPS, "tags", "теги"),
    "parent": FieldSpec("int", ("eq", "in", "exists"), "parent company", "головная компания"),
    "days_since_contact": FieldSpec(
        "days", ("gte", "lte", "exists"), "days since last contact", "дней с последнего контакта"
    ),
    "days_since_created": FieldSpec(
        "days", ("gte", "lte"), "days since created", "дней с создания"
    ),
    "deals_won_count": FieldSpec("int", ("eq", "gte", "lte"), "deals won", "выигранных сделок"),
    "deals_won_amount": FieldSpec(
        "number", ("eq", "gte", "lte"), "amount of deals won", "сумма выигранных сделок"
    ),
}
_COLUMNS: dict[str, Any] = {
    "kind": Client.kind,
    "status": Client.status,
    "name": Client.name,
    "inn": Client.inn,
    "industry": Client.industry,
    "activity": Client.activity,
    "region": Client.region,
    "city": Client.city,
    "source": Client.source,
    "headcount": Client.headcount,
    "revenue": Client.revenue,
    "owner": Client.owner_id,
    "parent": Client.parent_id,
}
# Custom field type -> value type of the rules.
_CF_TYPES = {"text": "text", "number": "number", "date": "date", "choice": "text", "multi": "multi"}
_CF_OPS = {
    "text": _TEXT_OPS,
    "number": _NUM_OPS,
    "date": ("eq", "ne", "in", "gte", "lte", "exists"),
    "multi": _SET_OPS,
}


def field_catalogue(custom: Mapping[str, str]) -> list[dict[str, Any]]:
    """The fields and operators a rule may use (for the editor), custom fields included:
    ``custom`` maps a custom field's key to its type."""
    out = [
        {
            "field": k,
            "type": f.type,
            "ops": list(f.ops),
            "label_en": f.label_en,
            "label_ru": f.label_ru,
        }
        for k, f in FIELDS.items()
    ]
    for key, cf_type in custom.items():
        vt = _CF_TYPES.get(cf_type, "text")
        out.append(
            {
                "field": CF_PREFIX + key,
                "type": vt,
                "ops": list(_CF_OPS[vt]),
                "label_en": key,
                "label_ru": key,
            }
        )
    return out


class _Compiler:
    def __init__(self, custom: Mapping[str, str], dialect: str, few: bool = False) -> None:
        self.custom = custom
        self.postgres = dialect == "postgresql"
        self.few = few
        self.conditions = 0

    # -- groups -------------------------------------------------------------------------
    def group(self, node: Any, path: str, depth: int) -> ColumnElement[bool]:
        if not isinstance(node, dict):
            raise RuleError(path, "must be an object", "должно быть объектом")
        if depth > MAX_DEPTH:
            raise RuleError(
                path,
                f"groups are nested deeper than {MAX_DEPTH} levels",
                f"группы вложены глубже {MAX_DEPTH} уровней",
            )
        keys = set(node)
        if keys not in ({"all"}, {"any"}):
            raise RuleError(
                path,
                'a group is {"all": [...]} or {"any": [...]}',
                'группа — это {"all": [...]} или {"any": [...]}',
            )
        key = "all" if "all" in node else "any"
        items = node[key]
        if not isinstance(items, list):
            raise RuleError(f"{path}.{key}", "must be a list", "должно быть списком")
        parts: list[ColumnElement[bool]] = []
        for i, item in enumerate(items):
            sub = f"{path}.{key}[{i}]"
            if isinstance(item, dict) and ("all" in item or "any" in item):
                parts.append(self.group(item, sub, depth + 1))
            else:
                parts.append(self.leaf(item, sub))
        if not parts:
            return true() if key == "all" else false()
        if len(parts) == 1:
            return parts[0]
        return and_(*parts) if key == "all" else or_(*parts)

    # -- conditions ---------------------------------------------------------------------
    def leaf(self, node: Any, path: str) -> ColumnElement[bool]:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise RuleError(
                path,
                f"more than {MAX_CONDITIONS} conditions",
                f"больше {MAX_CONDITIONS} условий",
            )
        if not isinstance(node, dict):
            raise RuleError(
                path,
                'a condition is {"field", "op", "value"}',
                'условие — это {"field", "op", "value"}',
            )
        extra = set(node) - {"field", "op", "value"}
        if extra:
            name = sorted(extra)[0][:50]
            raise RuleError(f"{path}.{name}", "is not a key of a condition", "не ключ условия")
        field_name = node.get("field")
        op = node.get("op")
        if not isinstance(field_name, str) or not field_name:
            raise RuleError(f"{path}.field", "is required", "обязательно")
        vtype, ops = self._field(field_name, f"{path}.field")
        if op not in OPS:
            raise RuleError(
                f"{path}.op",
                f"unknown operator; one of {', '.join(OPS)}",
                f"неизвестная операция; допустимы {', '.join(OPS)}",
            )
        if op not in ops:
            raise RuleError(
                f"{path}.op",
                f"{op} does not apply to {field_name[:60]}; use one of {', '.join(ops)}",
                f"{op} неприменима к {field_name[:60]}; допустимы {', '.join(ops)}",
            )
        vpath = f"{path}.value"
        if op == "exists":
            flag = node.get("value", True)
            if not isinstance(flag, bool):
                raise RuleError(vpath, "must be true or false", "должно быть true или false")
            cond = self._exists(field_name, vtype)
            return cond if flag else not_(cond)
        if "value" not in node:
            raise RuleError(vpath, "is required", "обязательно")
        raw = node["value"]
        if op == "in":
            if not isinstance(raw, list) or not raw:
                raise RuleError(vpath, "must be a non-empty list", "должно быть непустым списком")
            if len(raw) > MAX_LIST:
                raise RuleError(
                    vpath, f"has more than {MAX_LIST} values", f"больше {MAX_LIST} значений"
                )
            values = [self._value(v, vtype, f"{vpath}[{i}]") for i, v in enumerate(raw)]
            return self._in(field_name, vtype, values)
        value = self._value(raw, vtype, vpath)
        return self._compare(field_name, vtype, op, value)

    def _field(self, name: str, path: str) -> tuple[str, tuple[str, ...]]:
        spec = FIELDS.get(name)
        if spec is not None:
            return spec.type, spec.ops
        if name.startswith(CF_PREFIX):
            cf_type = self.custom.get(name[len(CF_PREFIX) :])
            if cf_type is not None:
                vt = _CF_TYPES.get(cf_type, "text")
                return vt, _CF_OPS[vt]
            raise RuleError(
                path, f"no custom field {name[3:][:60]!r}", f"нет доп. поля {name[3:][:60]!r}"
            )
        raise RuleError(path, f"unknown field {name[:60]!r}", f"неизвестное поле {name[:60]!r}")

    def _value(self, raw: Any, vtype: str, path: str) -> Any:
        if vtype in ("text", "tags", "multi"):
            if not isinstance(raw, str) or not raw.strip():
                raise RuleError(path, "must be a non-empty text", "должно быть непустым текстом")
            if len(raw) > MAX_TEXT:
                raise RuleError(
                    path,
                    f"is longer than {MAX_TEXT} characters",
                    f"длиннее {MAX_TEXT} символов",
                )
            return raw.strip()
        if vtype == "date":
            if isinstance(raw, str):
                try:
                    return date.fromisoformat(raw.strip()).isoformat()
                except ValueError:
                    pass
            raise RuleError(path, "must be a date YYYY-MM-DD", "должно быть датой ГГГГ-ММ-ДД")
        # numbers
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise RuleError(path, "must be a number", "должно быть числом")
        try:
            num = Decimal(str(raw).strip())
        except InvalidOperation:
            raise RuleError(path, "must be a number", "должно быть числом") from None
        if not num.is_finite() or abs(num) > Decimal(10) ** 15:
            raise RuleError(path, "is out of range", "вне допустимого диапазона")
        if vtype in ("int", "user", "days"):
            if num != num.to_integral_value():
                raise RuleError(path, "must be a whole number", "должно быть целым числом")
            if vtype != "int" and num < 0:
                raise RuleError(path, "must not be negative", "не может быть отрицательным")
            return int(num)
        return num

    # -- SQL ----------------------------------------------------------------------------
    def _cf_text(self, key: str) -> Any:
        return Client.custom[key].as_string()

    def _cf_num(self, key: str) -> Any:
        return Client.custom[key].as_float()

    def _expr(self, name: str, vtype: str) -> Any:
        """The scalar SQL expression of a field (not for tags and multi)."""
        if name in _COLUMNS:
            return _COLUMNS[name]
        if name.startswith(CF_PREFIX):
            key = name[len(CF_PREFIX) :]
            return self._cf_num(key) if vtype == "number" else self._cf_text(key)
        raise AssertionError(name)  # pragma: no cover

    def _won(self, name: str, op: str, value: Any) -> ColumnElement[bool]:
        """Won deals' count or amount against ``value``: one semi-join over the won deals
        grouped by client (read once), not a subquery per client; a client with no won
        deal counts as 0."""
        agg: Any = func.count() if name == "deals_won_count" else func.sum(Deal.amount)
        if self.few:  # a few clients (by id): one index lookup each beats the grouping
            per_client = (
                select(func.coalesce(agg, 0))
                .where(Deal.client_id == Client.id, Deal.stage == WON_STAGE)
                .scalar_subquery()
            )
            bound = self._bind(name, "number" if name == "deals_won_amount" else "int", value)
            return {"gte": per_client >= bound, "lte": per_client <= bound}.get(
                op, per_client == bound
            )
        won = select(Deal.client_id).where(Deal.stage == WON_STAGE).group_by(Deal.client_id)
        v = self._bind(name, "number" if name == "deals_won_amount" else "int", value)
        if op == "gte":
            if value <= 0:
                return true()
            return Client.id.in_(won.having(agg >= v))
        if op == "lte":
            if value < 0:
                return false()
            return Client.id.not_in(won.having(agg > v))
        if value == 0:  # eq 0: no won deal (or won deals of no amount)
            return Client.id.not_in(won.having(agg > 0))
        return Client.id.in_(won.having(agg == v))

    def _bind(self, name: str, vtype: str, value: Any) -> Any:
        if vtype == "number" and name.startswith(CF_PREFIX):
            return float(value)  # compared with the JSON value as a float
        if vtype == "number":
            return literal(value, Numeric(20, 2))
        return value

    def _exists(self, name: str, vtype: str) -> ColumnElement[bool]:
        if name == "tags":
            return exists().where(ClientTag.client_id == Client.id)
        if name == "days_since_contact":
            return Client.last_contact_at.is_not(None)
        if vtype == "multi":
            key = name[len(CF_PREFIX) :]
            return self._multi_any(key, None)
        expr = self._expr(name, vtype)
        if vtype == "text" and name.startswith(CF_PREFIX):
            return and_(expr.is_not(None), expr != "")
        return expr.is_not(None)

    def _multi_any(self, key: str, values: list[str] | None) -> ColumnElement[bool]:
        """The custom multi-choice ``key`` holds one of ``values`` (any value: None)."""
        if self.postgres:
            value = cast(Client.custom, JSONB)[key]
            array = case((func.jsonb_typeof(value) == "array", value), else_=text("'[]'::jsonb"))
            elems = func.jsonb_array_elements_text(array).table_valued("value")
        else:
            elems = func.json_each(Client.custom, f'$."{_json_key(key)}"').table_valued("value")
        sub = select(literal(1)).select_from(elems)
        if values is not None:
            sub = sub.where(elems.c.value.in_(values))
        return exists(sub)

    def _in(self, name: str, vtype: str, values: list[Any]) -> ColumnElement[bool]:
        if name == "tags":
            return exists().where(ClientTag.client_id == Client.id, ClientTag.tag.in_(values))
        if vtype == "multi":
            return self._multi_any(name[len(CF_PREFIX) :], values)
        if name in ("deals_won_count", "deals_won_amount", "days_since_contact"):
            raise AssertionError(name)  # pragma: no cover - "in" is not among their ops
        expr = self._expr(name, vtype)
        return expr.in_([self._bind(name, vtype, v) for v in values])

    def _compare(self, name: str, vtype: str, op: str, value: Any) -> ColumnElement[bool]:
        if name == "tags":
            # contains: the client has this tag
            return exists().where(ClientTag.client_id == Client.id, ClientTag.tag == value)
        if vtype == "multi":
            return self._multi_any(name[len(CF_PREFIX) :], [value])
        if vtype == "days":
            column = Client.last_contact_at if name == "days_since_contact" else Client.created_at
            edge = utcnow() - timedelta(days=int(value))
            if op == "gte":  # at least N days ago, or never (contact)
                cond: ColumnElement[bool] = column <= edge
                if name == "days_since_contact":
                    cond = or_(column.is_(None), cond)
                return cond
            return column > edge - timedelta(days=1)  # lte N: within the last N days
        if name in ("deals_won_count", "deals_won_amount"):
            return self._won(name, op, value)
        expr = self._expr(name, vtype)
        if op == "contains":  # any case, Cyrillic included (crm_casefold: crm_core.db)
            if self.postgres:
                return expr.icontains(value, autoescape=True)
            return func.crm_casefold(expr).contains(value.casefold(), autoescape=True)
        bound = self._bind(name, vtype, value)
        if op == "eq":
            return expr == bound
        if op == "ne":
            return or_(expr.is_(None), expr != bound)
        if op == "gte":
            return expr >= bound
        return expr <= bound


def _json_key(key: str) -> str:
    return key.replace('"', "")


def compile_rules(
    rules: Any,
    custom: Mapping[str, str],
    dialect: str,
    path: str = "rules",
    *,
    few: bool = False,
) -> ColumnElement[bool]:
    """Validate ``rules`` and return its SQL condition on ``clients``.  ``custom`` maps the
    active custom fields' keys to their types; ``dialect`` is ``sqlite`` or
    ``postgresql``; ``few``: the condition will test a few clients chosen by id (the
    segments of a page of clients), not scan the base.  Raises :class:`RuleError`
    naming the offending path."""
    return _Compiler(custom, dialect, few).group(rules, path, 1)
