"""Shared state and helpers of the organisation generator (see `__init__.py`).

`GenBase` owns the one `random.Random(seed)` and the organisation under construction, and
offers the small helpers every part of the generator uses: seeded ids and timestamps
(with deliberate `date_created` ties), audit fields, names, phones, custom values and the
part every activity shares (`base_activity`).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from ..common import add_seconds, iso, make_id, utc
from ..org import FakeOrg

DEFAULT_START = utc(2019, 1, 1)
DEFAULT_NOW = utc(2026, 10, 1)

FIRST_NAMES = (
    "Bruce", "Diana", "Clark", "Selina", "Tobias", "Lindsay", "Gob", "Maeby", "Steli",
    "Karen", "Carlos", "Ohad", "Anthony", "Phil", "Stefan", "Kevin", "Eric", "Lucía", "Zoë",
    "Jürgen", "Aiko", "Priya", "Omar", "Ingrid", "Mateo", "Chloé", "Nikolai", "Amara",
)  # fmt: skip
LAST_NAMES = (
    "Wayne", "Prince", "Kent", "Kyle", "Fünke", "Bluth", "Efti", "Nemitz", "Freo", "Wójcik",
    "Ramani", "Engoron", "García", "Müller", "Tanaka", "Sharma", "Haddad", "Larsen", "Rossi",
    "Dubois", "Petrov", "Okafor", "O'Brien", "Nguyen", "Silva", "Kowalski",
)  # fmt: skip
COMPANY_A = (
    "Wayne", "Bluth", "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wonka", "Hooli",
    "Vandelay", "Soylent", "Cyberdyne", "Tyrell", "Gringotts", "Monarch", "Pied Piper",
    "Dunder", "Aperture", "Massive", "Oscorp", "Nakatomi", "Zorg", "Kramerica", "Prestige",
)  # fmt: skip
COMPANY_B = (
    "Enterprises", "Company", "Corp", "Industries", "Labs", "GmbH", "& Sons", "Holdings",
    "Systems", "Logistics", "Foods", "Studios", "Partners", "S.A.", "Ltd", "Co-op",
)  # fmt: skip
TITLES = (
    "CEO", "CTO", "VP Sales", "Head of Ops", "Procurement", "The Dark Knight", "Magician",
    "sr. vice president", "Office Manager", "", None,
)  # fmt: skip
CITIES = (
    ("Gotham", "NJ", "US"), ("Palo Alto", "CA", "US"), ("Berlin", "BE", "DE"),
    ("Kraków", "MA", "PL"), ("Lisbon", "11", "PT"), ("Austin", "TX", "US"),
    ("Toronto", "ON", "CA"), ("Osaka", "27", "JP"),
)  # fmt: skip
WORDS = (
    "pricing", "demo", "follow up", "contract", "renewal", "budget", "integration", "pilot",
    "security review", "onboarding", "invoice", "timeline", "decision maker", "discount",
)  # fmt: skip
TZ_OFFSETS = ("-08:00", "-05:00", "+00:00", "+01:00", "+02:00", "+05:30", "+09:00", "-03:30")
TIE_EVERY = 10


class GenBase:
    """The rng, the organisation under construction and lookup tables shared by the parts
    of the generator (filled in as the parts run, in dependency order)."""

    active_users: list[dict[str, Any]]
    inactive_users: list[dict[str, Any]]
    lead_statuses: list[dict[str, Any]]
    opp_statuses: list[dict[str, Any]]
    pipeline_by_id: dict[str, dict[str, Any]]
    lead_fields: list[dict[str, Any]]
    contact_fields: list[dict[str, Any]]
    opportunity_fields: list[dict[str, Any]]
    shared_fields: list[dict[str, Any]]
    activity_fields: list[dict[str, Any]]
    activity_types: list[dict[str, Any]]
    templates: list[dict[str, Any]]
    sequences: list[dict[str, Any]]
    dialers: list[dict[str, Any]]
    google_account: dict[str, dict[str, Any]]
    user_numbers: dict[str, str]
    leads: list[dict[str, Any]]
    lead_contacts: dict[str, list[dict[str, Any]]]
    lead_opps: dict[str, list[dict[str, Any]]]
    lead_activities: dict[str, dict[str, list[dict[str, Any]]]]
    contact_sub: dict[str, dict[str, Any]]

    def __init__(self, seed: int, now: datetime, start: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.start = start
        org_id = make_id(self.rng, "orga")
        self.org = FakeOrg(organization_id=org_id, admin_user_id="", now=now)
        self.org_id = org_id
        self._last_created: dict[str, datetime] = {}
        self._seq: dict[str, int] = {}
        # Counters that run over every lead (so a part run chunk by chunk draws the same):
        # meetings made (every 5th is upcoming), non-lead tasks made (subtype cycle).
        self._meetings = 0
        self._task_subtypes = 0

    # -- small helpers -------------------------------------------------------------------

    def id(self, prefix: str, length: int = 43) -> str:
        return make_id(self.rng, prefix, length)

    def moment(self, lo: datetime, hi: datetime) -> datetime:
        """Uniform random instant in [lo, hi], millisecond precision."""
        span = max((hi - lo).total_seconds(), 0.0)
        return add_seconds(lo, self.rng.random() * span)

    def created(self, kind: str, lo: datetime, hi: datetime | None = None) -> datetime:
        """A `date_created`; every 10th object of a kind ties with the previous one."""
        n = self._seq[kind] = self._seq.get(kind, 0) + 1
        if n % TIE_EVERY == 0 and kind in self._last_created:
            dt = self._last_created[kind]
        else:
            dt = self.moment(lo, hi or self.now)
        self._last_created[kind] = dt
        return dt

    def updated(self, created: datetime) -> datetime:
        """A `date_updated` >= created: often a few ms later, sometimes much later."""
        if created >= self.now:
            return created
        if self.rng.random() < 0.45:
            return add_seconds(created, self.rng.randint(0, 40) / 1000)
        return self.moment(created, self.now)

    def user(self) -> dict[str, Any]:
        return self.rng.choice(self.active_users)

    def audit(
        self,
        created: datetime,
        updated: datetime,
        *,
        names: bool = False,
        creator: dict | None = None,
        nullable: bool = True,
    ) -> dict[str, Any]:
        """`created_by`/`updated_by` (+ `_name`s) and the two dates."""
        c = creator if creator is not None else self.user()
        if nullable and self.rng.random() < 0.1:
            c = None
        u = self.user() if self.rng.random() < 0.3 else (c or self.user())
        out: dict[str, Any] = {"created_by": c["id"] if c else None}
        if names:
            out["created_by_name"] = self.name(c) if c else None
        out["updated_by"] = u["id"]
        if names:
            out["updated_by_name"] = self.name(u)
        out["date_created"] = iso(created)
        out["date_updated"] = iso(updated)
        return out

    @staticmethod
    def name(user: dict[str, Any]) -> str:
        return f"{user['first_name']} {user['last_name']}"

    def person(self) -> tuple[str, str]:
        return self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)

    def phone(self) -> str:
        area = self.rng.choice(("650", "415", "212", "818", "919", "512"))
        return f"+1{area}{self.rng.randint(2000000, 9999999)}"

    def sentence(self, n: int = 6) -> str:
        words = [self.rng.choice(WORDS) for _ in range(n)]
        return (" ".join(words)).capitalize() + "."

    def maybe(self, contacts: list, p: float = 0.7) -> dict | None:
        return self.rng.choice(contacts) if contacts and self.rng.random() < p else None

    # -- custom values ---------------------------------------------------------------------

    def custom_value(
        self, field: dict[str, Any], contacts: list[dict[str, Any]] | None = None
    ) -> Any:
        """A random value of the field's type (lists for multi-value fields). A `contact`
        field takes the id of one of `contacts` (the object's lead's); None when there are
        none, which `put_custom` omits."""
        rng, t = self.rng, field["type"]
        if t == "text":
            return rng.choice(
                (
                    "Website contact form",
                    "Referral",
                    "Trade show",
                    "Cold call",
                    "Partner — EMEA",
                    'ünïcödé & "quotes"',
                )
            )
        if t == "textarea":
            lines = [self.sentence(rng.randint(3, 7)) for _ in range(rng.randint(2, 4))]
            if rng.random() < 0.3:
                lines.insert(1, "")  # a blank line between paragraphs
            return "\n".join(lines)
        if t == "number":
            if field.get("_number_kind") == "float":
                return round(rng.uniform(0, 250000), 2)
            return rng.randint(0, 5000)
        if t == "date":
            return self.moment(self.start, self.now + timedelta(days=365)).date().isoformat()
        if t == "datetime":
            dt = self.moment(self.start, self.now + timedelta(days=180))
            return dt.replace(microsecond=0, tzinfo=None).isoformat() + rng.choice(TZ_OFFSETS)
        if t == "choices":
            if field["accepts_multiple_values"]:
                k = rng.randint(1, min(3, len(field["choices"])))
                picked = set(rng.sample(field["choices"], k))
                return [c for c in field["choices"] if c in picked]
            return rng.choice(field["choices"])
        if t == "user":
            pool = self.active_users + self.inactive_users
            if field["accepts_multiple_values"]:
                k = rng.randint(1, min(2, len(pool)))
                return [u["id"] for u in rng.sample(pool, k)]
            return rng.choice(pool)["id"]
        if t == "contact":
            if not contacts:
                return None
            if field["accepts_multiple_values"]:
                k = rng.randint(1, min(2, len(contacts)))
                return [c["id"] for c in rng.sample(contacts, k)]
            return rng.choice(contacts)["id"]
        if t == "hidden":
            return rng.choice((f"sync-{rng.getrandbits(32):08x}", rng.randint(1, 10**6)))
        raise ValueError(t)

    def put_custom(
        self,
        obj: dict[str, Any],
        fields: list[dict[str, Any]],
        omit: float = 0.2,
        *,
        contacts: list[dict[str, Any]] | None = None,
    ) -> None:
        """Add `custom.<id>` keys; empty values are omitted, as documented (Close API: Leads).
        `contacts`: the candidates for `contact` fields (the lead's contacts)."""
        for field in fields:
            if self.rng.random() < omit:
                continue
            value = self.custom_value(field, contacts)
            if value is not None:
                obj[f"custom.{field['id']}"] = value

    def shared_for(self, object_type: str) -> list[dict[str, Any]]:
        return [
            f
            for f in self.shared_fields
            if any(a["object_type"] == object_type for a in f["associations"])
        ]

    # -- activities ------------------------------------------------------------------------

    def base_activity(
        self,
        type_: str,
        lead: dict,
        created: datetime,
        updated: datetime,
        *,
        contact: dict | None = None,
        user: dict | None = None,
    ) -> dict:
        user = user or self.user()
        out: dict[str, Any] = {
            "id": self.id("acti"),
            "_type": type_,
            "organization_id": self.org_id,
            "lead_id": lead["id"],
            "contact_id": contact["id"] if contact else None,
            "user_id": user["id"],
            "user_name": self.name(user),
            "users": [],
        }
        out.update(self.audit(created, updated, names=True, creator=user))
        return out


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)
