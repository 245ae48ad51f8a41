"""The custom field writes `POST/PUT/DELETE /custom_field/{kind}/...`: admin only
(Close API: Custom Fields), checked bodies, each one `mutations` call in one Event Log request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import mutations as m
from .. import org as o
from ..common import ApiError
from ..org import FakeOrg
from ..request import Request
from .writes import Writes, invalid_as_400


class FieldWrites(Writes):
    """The custom-field-writing half of `Router`."""

    async_conversions: bool

    def _field_write(self, req: Request, kind: str) -> dict[str, Any]:
        """Checks shared by the three writes; returns the JSON body (`{}` for DELETE)."""
        if not is_admin(self.org, req.user_id):
            raise ApiError(403, "You can only create/edit/delete custom fields if you're an admin.")
        if "id" in req.match:
            try:
                found = m.field_collection(self.org, req.match["id"])
            except KeyError:
                found = None
            if found != m.FIELD_COLLECTIONS[kind]:
                raise ApiError(404, f"Custom field {req.match['id']} not found.")
        if req.method == "DELETE":
            return {}
        if not isinstance(req.body, dict):
            raise ApiError(400, "A JSON object body is required.")
        return req.body

    def create_field(self, kind: str) -> Callable[[Request], dict]:
        """`POST /custom_field/{kind}/`: name, type, choices, accepts_multiple_values,
        description, editable_with_roles; custom_activity_type_id + required (activity);
        associations (shared)."""

        def handle(req: Request) -> dict[str, Any]:
            body = self._field_write(req, kind)
            if "type" not in body:
                raise ApiError(400, "`type` is required.")
            extra: dict[str, Any] = {}
            if kind == "activity":
                extra["custom_activity_type_id"] = body.get("custom_activity_type_id")
                extra["required"] = body.get("required", False)
            elif "custom_activity_type_id" in body:
                extra["custom_activity_type_id"] = body["custom_activity_type_id"]
            if kind == "shared" or "associations" in body:
                extra["associations"] = body.get("associations")
            at = self._now()
            with self._change(req, at):
                return invalid_as_400(
                    m.add_field,
                    self.org,
                    kind,
                    body.get("name"),
                    body["type"],
                    choices=body.get("choices"),
                    multi=body.get("accepts_multiple_values", False),
                    description=body.get("description"),
                    editable_with_roles=_string_list(body, "editable_with_roles"),
                    user_id=req.user_id,
                    at=at,
                    **extra,
                )

        return handle

    def update_field(self, kind: str) -> Callable[[Request], dict]:
        """`PUT /custom_field/{kind}/{id}/`: rename, retype, accepts_multiple_values, choices,
        description, required (activity). With `async_conversions`, a type change answers
        with `converting_to_type` and values wait for `mutations.finish_conversion`."""

        def handle(req: Request) -> dict[str, Any]:
            body = self._field_write(req, kind)
            field_id = req.match["id"]
            current = self.org.get(m.FIELD_COLLECTIONS[kind], field_id) or {}
            if "custom_activity_type_id" in body and body["custom_activity_type_id"] != (
                current.get("custom_activity_type_id")
            ):
                raise ApiError(400, "The custom_activity_type_id value cannot be changed.")
            if "associations" in body:
                raise ApiError(
                    400, "The fake Close API does not implement changing `associations`."
                )
            if "name" in body and not isinstance(body["name"], str):
                raise ApiError(400, "`name` must be a non-empty string.")
            if "required" in body and kind != "activity":
                raise ApiError(400, "`required` only applies to activity fields.")
            options: dict[str, Any] = {}
            if "description" in body:
                options["description"] = body["description"]
            new_type = body.get("type")
            at = self._now()
            with self._change(req, at):
                return invalid_as_400(
                    m.update_field,
                    self.org,
                    field_id,
                    name=body.get("name"),
                    type_=new_type,
                    multi=body.get("accepts_multiple_values"),
                    choices=body.get("choices"),
                    required=body.get("required"),
                    converting=self.async_conversions
                    and new_type is not None
                    and new_type != current.get("type"),
                    user_id=req.user_id,
                    at=at,
                    **options,
                )

        return handle

    def delete_field(self, kind: str) -> Callable[[Request], dict]:
        """`DELETE /custom_field/{kind}/{id}/`: answers `{}`."""

        def handle(req: Request) -> dict[str, Any]:
            self._field_write(req, kind)
            at = self._now()
            with self._change(req, at):
                invalid_as_400(m.delete_field, self.org, req.match["id"], at=at)
            return {}

        return handle


def is_admin(org: FakeOrg, user_id: str) -> bool:
    """Whether the user is an active member with the Admin role."""
    admin_roles = {r["id"] for r in org.all(o.ROLE) if r.get("name") == "Admin"}
    return any(
        mb["role_id"] in admin_roles for mb in org.children(o.MEMBERSHIP, "user_id", user_id)
    )


def _string_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ApiError(400, f"`{key}` must be a list of strings.")
    return value
