"""Generator part: custom field definitions of every kind and type, and the custom activity
types whose fields they are."""

from __future__ import annotations

from typing import Any

from .. import org as o
from ..common import SHORT_ID, iso, iso_naive, utc
from .base import GenBase


class CustomFieldMixin(GenBase):
    """Makes the custom field definitions and custom activity types."""

    def _field(
        self,
        kind: str,
        name: str,
        type_: str,
        *,
        multi: bool = False,
        choices: tuple[str, ...] = (),
        description: str | None = None,
        extra: dict | None = None,
    ) -> dict[str, Any]:
        created = self.moment(utc(2019, 1, 1), utc(2021, 1, 1))
        admin = self.active_users[0]
        field: dict[str, Any] = {
            "id": self.id("cf"),
            "name": name,
            "description": description,
            "type": type_,
            "accepts_multiple_values": multi,
        }
        if type_ == "choices":
            field["choices"] = list(choices)
        if kind != "lead":
            field["editable_with_roles"] = []
        field.update({
            "date_created": iso(created),
            "date_updated": iso(self.updated(created)),
            "created_by": admin["id"],
            "updated_by": admin["id"],
            "organization_id": self.org_id,
        })  # fmt: skip
        if extra:
            field.update(extra)
        # Generator-only hint for value generation (int vs float); removed before storing.
        field["_number_kind"] = "float" if name in ("ARR Estimate", "Rating") else "int"
        return field

    def make_custom_fields(self) -> None:
        f = self._field
        self.lead_fields = [
            f("lead", "Lead Source", "text", description="Where the lead came from"),
            f("lead", "Employees", "number", description="Head count"),
            f("lead", "ARR Estimate", "number"),
            f("lead", "Trial Ends", "date", description="The date the trial expires"),
            f("lead", "Next Demo", "datetime"),
            f("lead", "Industry", "choices", choices=("Apparel", "Cars", "Cosmetics", "IT")),
            f(
                "lead",
                "Products",
                "choices",
                multi=True,
                choices=("Choice 1", "Choice 2", "CRM", "Dialer", "Sequences"),
            ),
            f("lead", "Account Owner", "user", description="The AE in charge of this account"),
            f("lead", "Champions", "user", multi=True),
            f("lead", "Internal Sync Token", "hidden"),
            f("lead", "Notes (long)", "textarea", description="Free-form notes, several lines"),
        ]
        self.contact_fields = [
            f("contact", "Role", "choices", choices=("Account Executive", "CEO", "Sales Rep")),
            f("contact", "LinkedIn Followers", "number"),
            f("contact", "Birthday", "date"),
            f(
                "contact",
                "Languages",
                "choices",
                multi=True,
                choices=("English", "German", "Polish", "Japanese"),
            ),
        ]
        self.opportunity_fields = [
            f("opportunity", "Deal Source", "choices", choices=("Inbound", "Outbound", "Partner")),
            f("opportunity", "Seats", "number"),
            f("opportunity", "Expected Close", "date"),
            # Value: the id of one of the lead's contacts (omitted when the lead has none).
            f("opportunity", "Primary Contact", "contact"),
        ]

        # Shared fields are TOC-only in the docs; `associations` lists the object types a
        # shared field applies to (our invented, documented shape).
        def assoc(*types: str) -> dict[str, Any]:
            return {"associations": [
                {"object_type": t, "custom_activity_type_id": None, "editable_with_roles": [],
                 "required": False} for t in types]}  # fmt: skip

        self.shared_fields = [
            f(
                "shared",
                "Region",
                "choices",
                choices=("EMEA", "AMER", "APAC"),
                extra=assoc("lead", "contact"),
            ),
            f("shared", "External ID", "text", extra=assoc("lead", "opportunity")),
        ]
        # Custom activity types and their fields.
        admin = self.active_users[0]
        types = []
        for name, desc, api_only in (
            ("API Event", "An API event only, with no fields.", True),
            ("Newsletter Signup", "Happens when the lead signs up for the newsletter", False),
            ("Demo Feedback", "Feedback captured after a product demo", False),
        ):
            created = self.moment(utc(2020, 7, 1), utc(2021, 1, 1))
            types.append({
                "api_create_only": api_only,
                "created_by": admin["id"],
                "date_created": iso_naive(created),
                "date_updated": iso_naive(self.updated(created)),
                "description": desc,
                "editable_with_roles": [],
                "id": self.id("actitype", SHORT_ID),
                "name": name,
                "organization_id": self.org_id,
                "updated_by": admin["id"],
            })  # fmt: skip
        self.activity_types = types

        def af(t: dict, name: str, type_: str, required: bool = False, **kw: Any) -> dict:
            return f(
                "activity",
                name,
                type_,
                extra={"custom_activity_type_id": t["id"], "required": required},
                **kw,
            )

        self.activity_fields = [
            af(
                types[1],
                "Email Address",
                "text",
                True,
                description="Email of the person who signed up for the newsletter",
            ),
            af(types[1], "Wants Marketing Materials", "choices", multi=True, choices=("Yes", "No")),
            af(types[2], "Rating", "number", True),
            af(types[2], "Demo Date", "date"),
            af(types[2], "Follow-up At", "datetime"),
            af(types[2], "Attendees", "user", multi=True),
            af(types[2], "Outcome", "choices", choices=("Great", "Okay", "Poor")),
            af(types[2], "Internal Ref", "hidden"),
        ]
        org = self.org
        for coll, fields in (
            (o.CUSTOM_FIELD_LEAD, self.lead_fields),
            (o.CUSTOM_FIELD_CONTACT, self.contact_fields),
            (o.CUSTOM_FIELD_OPPORTUNITY, self.opportunity_fields),
            (o.CUSTOM_FIELD_SHARED, self.shared_fields),
            (o.CUSTOM_FIELD_ACTIVITY, self.activity_fields),
        ):
            org.put_many(
                coll, [{k: v for k, v in fd.items() if k != "_number_kind"} for fd in fields]
            )
        org.put_many(o.CUSTOM_ACTIVITY_TYPE, types)
