"""The file behind a finished export: gzip-compressed JSON, one document per lead.

Close documents neither the layout of a JSON export nor its custom-value style
(Close API: Exports; other Close connectors met both), so both are choices (`FileShape`):

- `layout="array"`: one top-level JSON array, compact, on a single line (a client needs a
  streaming parser such as ijson; there is no line per lead to split on);
  `layout="jsonl"`: one document per line.
- `custom_style="keys"`: `custom.<field id>` keys, as the API returns them; `"dict"`: one
  `custom` dict keyed by each field's display name (the deprecated style the export's
  `fields` list names); `"both"`.

A lead document is the lead as `GET /lead/{id}/` renders it (nested `contacts`,
`opportunities`, `tasks`, `contact_ids`, `addresses`, custom values) plus, with
`include_activities`, an `activities` list: every activity of the lead, newest first, in
the shape of the per-type endpoints (`custom.<id>` keys on custom activities, whatever the
`custom_style`). Emails come one per message; `EmailThread` objects only with
`include_threads` (the generic activity endpoint without `thread_emails` lists no threads).

The file is written as a stream (render, serialise and compress one document at a time),
so its size does not bound memory. Gzip with `mtime=0` and no file name: the same
organisation and shape always give the same bytes.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .. import org as o
from .. import views as v
from ..org import FakeOrg
from ..params import newest_first

LAYOUTS = ("array", "jsonl")
CUSTOM_STYLES = ("keys", "dict", "both")
EXPORT_TYPES = ("leads", "contacts", "lead_opps")

# Custom field definitions that apply to each object type (own fields, then shared ones).
_FIELD_COLLECTIONS = {
    "lead": o.CUSTOM_FIELD_LEAD,
    "contact": o.CUSTOM_FIELD_CONTACT,
    "opportunity": o.CUSTOM_FIELD_OPPORTUNITY,
}


@dataclass(frozen=True)
class FileShape:
    """What an export file holds and how it is laid out: `layout`, `custom_style`,
    `contact_lead_id`, `include_threads`, `include_tasks` and `compresslevel` come from the
    fake's `ExportSettings`; `export_type`, `include_activities` and `fields` from the request."""

    layout: str = "array"
    custom_style: str = "dict"
    contact_lead_id: bool = False  # nested contacts carry `lead_id` (GET /lead/ shows none)
    include_threads: bool = False  # EmailThread objects next to their Email messages
    include_tasks: bool = True  # the lead's `tasks[]`, as GET /lead/ shows them
    export_type: str = "leads"
    include_activities: bool = False
    fields: tuple[str, ...] | None = None  # restricts each document's top-level keys
    compresslevel: int = 6

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("layout", self.layout, LAYOUTS),
            ("custom_style", self.custom_style, CUSTOM_STYLES),
            ("export_type", self.export_type, EXPORT_TYPES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
        if not 0 <= self.compresslevel <= 9:
            raise ValueError("compresslevel must be 0..9")


def default_selection(org: FakeOrg) -> list[dict[str, Any]]:
    """Every lead, in the search's default order (`date_created` desc, then id desc)."""
    return newest_first(org.all(o.LEAD))


def count_docs(org: FakeOrg, leads: list[dict[str, Any]], export_type: str) -> int:
    """`n_docs` of an export: leads, or the selected leads' contacts or opportunities."""
    if export_type == "leads":
        return len(leads)
    coll = o.CONTACT if export_type == "contacts" else o.OPPORTUNITY
    return sum(len(org.children(coll, "lead_id", lead["id"])) for lead in leads)


class DocumentRenderer:
    """Turns stored objects of one (snapshot) organisation into export documents and
    counts what it rendered per object type (`lead`, `contact`, `activity.Note`...)."""

    def __init__(self, org: FakeOrg, shape: FileShape) -> None:
        self.org = org
        self.shape = shape
        self.counts: Counter[str] = Counter()
        self._names: dict[str, dict[str, str]] = {}
        for object_type, coll in _FIELD_COLLECTIONS.items():
            names = {f["id"]: f["name"] for f in org.all(coll)}
            for f in org.all(o.CUSTOM_FIELD_SHARED):
                if any(a.get("object_type") == object_type for a in f.get("associations", [])):
                    names[f["id"]] = f["name"]
            self._names[object_type] = names

    def documents(self, leads: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The documents of the export, in file order."""
        kind, counts = self.shape.export_type, self.counts
        for lead in leads:
            if kind == "leads":
                doc = self.lead(lead)
                counts["lead"] += 1
                for key, name in (("contacts", "contact"), ("opportunities", "opportunity"),
                                  ("tasks", "task")):  # fmt: skip
                    counts[name] += len(doc.get(key, ()))
                for act in doc.get("activities", ()):
                    counts[f"activity.{act['_type']}"] += 1
                yield doc
            elif kind == "contacts":
                for contact in self.org.children(o.CONTACT, "lead_id", lead["id"]):
                    counts["contact"] += 1
                    yield self._project(self.contact(contact, with_lead_id=True))
            else:
                for opp in self.org.children(o.OPPORTUNITY, "lead_id", lead["id"]):
                    counts["opportunity"] += 1
                    yield self._project(self.opportunity(opp))

    def lead(self, lead: dict[str, Any]) -> dict[str, Any]:
        shape, org = self.shape, self.org
        out = v.render_lead(org, lead)
        out["contacts"] = [
            self.contact(c, with_lead_id=shape.contact_lead_id)
            for c in org.children(o.CONTACT, "lead_id", lead["id"])
        ]
        out["opportunities"] = [self.opportunity(x) for x in out["opportunities"]]
        if not shape.include_tasks:
            del out["tasks"]
        out = self._custom(out, "lead")
        out = self._project(out)
        if shape.include_activities:
            out["activities"] = self.activities(lead["id"])
        return out

    def contact(self, contact: dict[str, Any], *, with_lead_id: bool) -> dict[str, Any]:
        rendered = v.render_contact(self.org, contact, with_lead_id=with_lead_id)
        return self._custom(rendered, "contact")

    def opportunity(self, opp: dict[str, Any]) -> dict[str, Any]:
        return self._custom(opp, "opportunity")

    def activities(self, lead_id: str) -> list[dict[str, Any]]:
        out = []
        for act in newest_first(self.org.children(o.ACTIVITY, "lead_id", lead_id)):
            if act["_type"] == "EmailThread" and not self.shape.include_threads:
                continue
            out.append(v.render_activity(self.org, act))
        return out

    def _custom(self, obj: dict[str, Any], object_type: str) -> dict[str, Any]:
        """Apply the custom-value style. In the dict style a field whose display name
        repeats on one object type overwrites the earlier one (the style's own hazard)."""
        style = self.shape.custom_style
        if style == "keys":
            return obj
        names = self._names[object_type]
        out: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for key, value in obj.items():
            if key.startswith("custom."):
                field_id = key[len("custom.") :]
                custom[names.get(field_id, field_id)] = value
                if style == "both":
                    out[key] = value
            else:
                out[key] = value
        out["custom"] = custom
        return out

    def _project(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The request's `fields`: named top-level keys; `custom` keeps the custom values
        in whatever style."""
        fields = self.shape.fields
        if fields is None:
            return doc
        wanted = set(fields)
        return {
            k: val for k, val in doc.items()
            if k in wanted or ("custom" in wanted and k.startswith("custom."))
        }  # fmt: skip


class ExportFileWriter:
    """The gzip file of an export, written one document at a time (`write` a document,
    or `write_bytes` its JSON): `[` ... `,` ... `]` or one line each (`shape.layout`)."""

    def __init__(self, path: str | Path, shape: FileShape) -> None:
        self.path, self.shape = path, shape
        self.written = 0
        self._array = shape.layout == "array"

    def __enter__(self) -> ExportFileWriter:
        self._raw = open(self.path, "wb")  # noqa: SIM115 (closed in __exit__)
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                                 compresslevel=self.shape.compresslevel, mtime=0)  # fmt: skip
        if self._array:
            self._gz.write(b"[")
        return self

    def write(self, doc: dict[str, Any]) -> None:
        self.write_bytes(orjson.dumps(doc))

    def write_bytes(self, data: bytes) -> None:
        if self._array:
            self._gz.write(b"," + data if self.written else data)
        else:
            self._gz.write(data + b"\n")
        self.written += 1

    def __exit__(self, *exc: object) -> None:
        try:
            if self._array and exc[0] is None:
                self._gz.write(b"]")
            self._gz.close()
        finally:
            self._raw.close()


def write_documents(
    org: FakeOrg,
    leads: Iterable[dict[str, Any]],
    path: str | Path,
    shape: FileShape,
    *,
    on_document: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, int]:
    """Stream the export of `leads` (objects of the snapshot `org`) to a gzip file at
    `path`; returns counts per object type. `on_document(n)` is told how many documents
    are written so far; setting `cancel` stops the writer (the file is then incomplete)."""
    renderer = DocumentRenderer(org, shape)
    with ExportFileWriter(path, shape) as out:
        for doc in renderer.documents(leads):
            if cancel is not None and cancel.is_set():
                break
            out.write(doc)
            if on_document is not None:
                on_document(out.written)
    return dict(sorted(renderer.counts.items()))


def write_export_file(
    org: FakeOrg,
    path: str | Path,
    *,
    layout: str = "array",
    custom_style: str = "dict",
    include_activities: bool = True,
    include_threads: bool = False,
    include_tasks: bool = True,
    contact_lead_id: bool = False,
    export_type: str = "leads",
    fields: Iterable[str] | None = None,
    compresslevel: int = 6,
) -> dict[str, int]:
    """Write the file a JSON export of every lead would download, without HTTP (for
    benchmarks). Same bytes as the fake server serves for the same settings and request.
    Returns counts per object type: `{"lead": n, "contact": n, "activity.Note": n, ...}`."""
    shape = FileShape(
        layout=layout,
        custom_style=custom_style,
        contact_lead_id=contact_lead_id,
        include_threads=include_threads,
        include_tasks=include_tasks,
        export_type=export_type,
        include_activities=include_activities,
        fields=tuple(fields) if fields is not None else None,
        compresslevel=compresslevel,
    )
    snap = org.snapshot()
    return write_documents(snap, default_selection(snap), path, shape)
