"""What random changes draw from: word tables, random users, objects, sentences and values.

A random valid value of any custom field (`_value`) and the fields that take values on an
object (`_fields_for`) serve both object and field changes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from .. import mutations as m
from .. import org as o
from ..org import FakeOrg

MIN_LEADS = 3  # deletes and merges keep at least this many leads
# One kind of change: applies itself and describes it, or None when it does not apply.
Change = Callable[[FakeOrg, random.Random], str | None]

_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "north", "south", "prime", "nova", "apex")
_COMPANY = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Wonka", "Stark", "Tyrell")
_SUFFIX = ("Inc", "GmbH", "Labs", "Partners", "& Co", "S.A.")
_PEOPLE = ("Ann Lee", "Bo Chen", "Chloé Roux", "Dario Rossi", "Eve Adams", "Jürgen Weiß", "")
_TITLES = ("CEO", "CTO", "VP Sales", "Buyer", "", None)
_CITIES = (("Gotham", "NJ", "US"), ("Berlin", "BE", "DE"), ("Osaka", "27", "JP"))


_FIRST_NAMES = ("Ada", "Bruno", "Carla", "Dmitri", "Elif", "Femi", "Greta", "Hiro", "Inès")
_LAST_NAMES = ("Ng", "Okoro", "Petrov", "Quinn", "Rossi", "Sato", "Tan", "Ueda", "Varga")


def _users(org: FakeOrg) -> list[str]:
    return [mb["user_id"] for mb in org.all(o.MEMBERSHIP)]


def _user(org: FakeOrg, rng: random.Random) -> str:
    users = _users(org)
    return rng.choice(users) if users else org.admin_user_id


def _pick(rng: random.Random, items: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """One of `items` (a list, or a `FakeOrg.ranked` view: same draws, no list built)."""
    return rng.choice(items) if items else None


def _lead(org: FakeOrg, rng: random.Random) -> dict[str, Any] | None:
    return _pick(rng, org.ranked(o.LEAD))


def _of_type(type_: str) -> Callable[[FakeOrg, dict[str, Any]], bool]:
    def of_type(org: FakeOrg, act: dict[str, Any]) -> bool:
        return act["_type"] == type_

    return of_type


# One predicate per activity type, made once: `org.ranked` keeps a view per predicate.
_OF_TYPE = {type_: _of_type(type_) for type_ in o.ACTIVITY_TYPES}


def _activities(org: FakeOrg, type_: str) -> Sequence[dict[str, Any]]:
    """`org.activities(type_)` as a ranked view: the same objects in the same order, without
    an index whose groups (tens of thousands of activities) every write would edit."""
    return org.ranked(o.ACTIVITY, _OF_TYPE[type_])


def _sentence(rng: random.Random, k: int = 5) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(k)).capitalize() + "."


def _fields_for(org: FakeOrg, collection: str, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The custom field definitions that take values on `obj`."""
    if collection == o.ACTIVITY:
        type_id = obj.get("custom_activity_type_id")
        if obj.get("_type") != "CustomActivity" or not type_id:
            return []
        return list(org.children(o.CUSTOM_FIELD_ACTIVITY, "custom_activity_type_id", type_id))
    own = {o.LEAD: o.CUSTOM_FIELD_LEAD, o.CONTACT: o.CUSTOM_FIELD_CONTACT}
    own[o.OPPORTUNITY] = o.CUSTOM_FIELD_OPPORTUNITY
    shared = [
        f
        for f in org.all(o.CUSTOM_FIELD_SHARED)
        if any(m.SHARED_OBJECT_TYPES.get(a["object_type"]) == collection for a in f["associations"])
    ]
    return org.all(own[collection]) + shared


def _value(org: FakeOrg, rng: random.Random, field: dict[str, Any], lead_id: str | None) -> Any:
    """A random valid value of a custom field (None when there is none, e.g. no contacts)."""
    t, multi = field["type"], bool(field.get("accepts_multiple_values"))
    if t in ("text", "textarea"):
        return _sentence(rng, 3 if t == "text" else 9)
    if t == "number":
        return rng.choice((rng.randint(0, 10_000), round(rng.uniform(0, 1000), 2)))
    if t == "date":
        return f"202{rng.randint(4, 7)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if t == "datetime":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:30:00+02:00"
    if t == "choices":
        choices = field.get("choices") or []
        if not choices:
            return None
        if multi:
            return rng.sample(choices, rng.randint(1, min(2, len(choices))))
        return rng.choice(choices)
    if t == "user":
        users = _users(org)
        return rng.sample(users, min(2, len(users))) if multi else rng.choice(users)
    if t == "contact":
        contacts = [x["id"] for x in org.children(o.CONTACT, "lead_id", lead_id)] if lead_id else []
        if not contacts:
            return None
        return [rng.choice(contacts)] if multi else rng.choice(contacts)
    return f"hidden-{rng.getrandbits(24):06x}"


def _renamed(rng: random.Random, old: str) -> str:
    """`old` with a new ` ~N` suffix (never the same text)."""
    base = old.split(" ~")[0]
    while True:
        name = f"{base} ~{rng.randint(1, 999)}"
        if name != old:
            return name
