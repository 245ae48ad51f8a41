"""The renames of statuses and pipelines: `PUT /status/lead/{id}/`, `PUT /status/opportunity/{id}/`
(a new `label`) and `PUT /pipeline/{id}/` (a new `name`, its statuses reordered or moved in from
another pipeline; Close API: Lead Statuses; Opportunity Statuses; Pipelines), each one `changes`
call in one Event Log request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import changes as c
from .. import org as o
from .. import views as v
from ..common import ApiError
from ..request import Request
from .writes import Writes, invalid_as_400


class StatusWrites(Writes):
    """The status-and-pipeline-writing half of `Router`."""

    def rename_status(self, collection: str) -> Callable[[Request], dict]:
        """Only `label` changes (the docs document no other field): any other key must
        repeat the stored value, as a client sending the object back does."""
        rename = c.rename_lead_status if collection == o.LEAD_STATUS else \
            c.rename_opportunity_status

        def handle(req: Request) -> dict[str, Any]:
            status = self._stored(collection, req)
            body = _body(req)
            fixed = sorted(k for k, val in body.items() if k != "label" and status.get(k) != val)
            if fixed:
                raise ApiError(400, f"Only a status's label can be changed, not {fixed[0]!r}.")
            if "label" not in body:
                raise ApiError(400, "`label` is required.")
            at = self._now()
            with self._change(req, at):
                return invalid_as_400(rename, self.org, status["id"], body["label"],
                                      user_id=req.user_id, at=at)  # fmt: skip

        return handle

    def update_pipeline(self, req: Request) -> dict[str, Any]:
        """`name` and/or `statuses` (`[{"id": ...}, ...]`, in their new order)."""
        pipe = self._stored(o.PIPELINE, req)
        body = _body(req)
        statuses = body.get("statuses")
        if statuses is not None and not (
            isinstance(statuses, list)
            and all(isinstance(s, dict) and isinstance(s.get("id"), str) for s in statuses)
        ):
            raise ApiError(400, '`statuses` must be a list of {"id": ...} objects.')
        at = self._now()
        with self._change(req, at):
            invalid_as_400(c.update_pipeline, self.org, pipe["id"], body.get("name"),
                           None if statuses is None else [s["id"] for s in statuses],
                           user_id=req.user_id, at=at)  # fmt: skip
        return v.render_pipeline(self.org, self.org.get(o.PIPELINE, pipe["id"]) or pipe)

    def _stored(self, collection: str, req: Request) -> dict[str, Any]:
        obj = self.org.get(collection, req.match["id"])
        if obj is None:
            raise ApiError(404, f"Object {req.match['id']} not found.")
        return obj


def _body(req: Request) -> dict[str, Any]:
    if not isinstance(req.body, dict):
        raise ApiError(400, "A JSON object body is required.")
    return req.body
