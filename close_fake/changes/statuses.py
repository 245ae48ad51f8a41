"""Lead and opportunity statuses renamed, pipelines renamed and their statuses placed: the
writes `PUT /status/lead/{id}/`, `PUT /status/opportunity/{id}/` and `PUT /pipeline/{id}/`
(Close API: Lead Statuses; Opportunity Statuses; Pipelines).

A status rename logs the status's own `updated` (`status.lead` / `status.opportunity`; Close API:
Event Log, List of events); pipelines have no events, and a status logs nothing but a change of its
`label`. The leads and opportunities naming a status or pipeline change silently: their
`status_label` / `pipeline_name` follow (`labels.py`), and opportunities in a status moved to
another pipeline are in that pipeline now; none of them gets an event or a new `date_updated`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .. import events as ev
from .. import org as o
from ..org import FakeOrg
from .objects import ADMIN, _audited, _object_request, _stored
from .updates import update


def _relabel(org: FakeOrg, collection: str, status_id: str, label: str, user_id: str | None,
             api_key_id: str | None, at: datetime | None) -> dict[str, Any]:
    if not isinstance(label, str) or not label.strip():
        raise ValueError("A label must be a non-empty string.")
    return update(org, collection, status_id, {"label": label}, user_id=user_id,
                  api_key_id=api_key_id, at=at)  # fmt: skip


def rename_lead_status(
    org: FakeOrg,
    status_id: str,
    label: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`PUT /status/lead/{id}/` with a new `label` (Close API: Lead Statuses): `status.lead`
    `updated`; with `labels="follow"` the leads' `status_label` follows, silently. Returns
    the status."""
    return _relabel(org, o.LEAD_STATUS, status_id, label, user_id, api_key_id, at)


def rename_opportunity_status(
    org: FakeOrg,
    status_id: str,
    label: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`PUT /status/opportunity/{id}/` with a new `label` (Close API: Opportunity Statuses):
    `status.opportunity` `updated`; with `labels="follow"` the opportunities' `status_label` and
    the pipeline's nested `statuses[].label` follow, silently. Returns the status."""
    return _relabel(org, o.OPPORTUNITY_STATUS, status_id, label, user_id, api_key_id, at)


def rename_pipeline(
    org: FakeOrg,
    pipeline_id: str,
    name: str,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`PUT /pipeline/{id}/` with a new `name` (see `update_pipeline`). Returns the
    pipeline."""
    return update_pipeline(org, pipeline_id, name, user_id=user_id, api_key_id=api_key_id,
                           at=at)  # fmt: skip


def update_pipeline(
    org: FakeOrg,
    pipeline_id: str,
    name: str | None = None,
    statuses: Sequence[str] | None = None,
    *,
    user_id: str | None = ADMIN,
    api_key_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """`PUT /pipeline/{id}/` (Close API: Pipelines): a new `name`, and/or `statuses` (status ids in
    their new order): the pipeline's own statuses reordered, a status of another pipeline moved
    into this one. Statuses of the pipeline left out keep their order after the listed ones (our
    reading; the docs do not say). Nothing is logged (pipelines have no events; a status's
    `updated` is its label's: Close API: Event Log, List of events); the pipeline's `date_updated`
    and `updated_by` move. The opportunities in a moved status get this pipeline's `pipeline_id`,
    and with `labels="follow"` its `pipeline_name`, silently; with `labels="follow"` a new name
    reaches every opportunity's `pipeline_name` (`labels.py`). Returns the pipeline."""
    if name is None and statuses is None:
        raise ValueError("Give a name and/or statuses.")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError("A name must be a non-empty string.")
    pipe = _stored(org, o.PIPELINE, pipeline_id)
    with _object_request(org, "PUT", o.PIPELINE, pipe, user_id, api_key_id, at) as rq:
        placed = statuses is not None and _place_statuses(org, pipe, list(statuses))
        if name is not None and name != pipe.get("name"):
            return update(org, o.PIPELINE, pipeline_id, {"name": name}, user_id=user_id,
                          api_key_id=api_key_id, at=at)  # fmt: skip
        if placed:
            org.put(o.PIPELINE, _audited(org, o.PIPELINE, pipe, rq))
        return org.get(o.PIPELINE, pipeline_id) or pipe


def _place_statuses(org: FakeOrg, pipe: dict[str, Any], order: list[str]) -> bool:
    """The pipeline's statuses in `order` (moved in from other pipelines as needed), the
    others of the pipeline after them; whether anything changed."""
    if not all(isinstance(status_id, str) for status_id in order):
        raise ValueError("`statuses` must list status ids.")
    if len(set(order)) != len(order):
        raise ValueError("A status is listed twice.")
    unknown = [status_id for status_id in order if org.get(o.OPPORTUNITY_STATUS, status_id) is None]
    if unknown:
        raise ValueError(f"Unknown opportunity status {unknown[0]}.")
    before = list(org.children(o.OPPORTUNITY_STATUS, "pipeline_id", pipe["id"]))
    listed = [org.get(o.OPPORTUNITY_STATUS, status_id) for status_id in order]
    after = [*listed, *(s for s in before if s["id"] not in set(order))]
    if [s["id"] for s in after] == [s["id"] for s in before]:
        return False
    for status in after:  # stored in their new order: the pipeline lists them by it
        org.remove(o.OPPORTUNITY_STATUS, status["id"])
    for status in after:
        moved = status["pipeline_id"] != pipe["id"]
        org.put(o.OPPORTUNITY_STATUS, {**status, "pipeline_id": pipe["id"]})
        if moved:
            _opportunities_moved(org, status["id"], pipe)
    return True


def _opportunities_moved(org: FakeOrg, status_id: str, pipe: dict[str, Any]) -> None:
    """Opportunities are in their status's pipeline: a moved status takes them along."""
    follow = ev.log_of(org).labels == "follow"
    changed = []
    for opp in org.children(o.OPPORTUNITY, "status_id", status_id):
        new = {**opp, "pipeline_id": pipe["id"]}
        if follow and "pipeline_name" in opp:
            new["pipeline_name"] = pipe.get("name")
        if new != opp:
            changed.append(new)
    if changed:
        org.put_many(o.OPPORTUNITY, changed)
