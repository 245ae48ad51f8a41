"""Export files of generated organisations of any size (`write_generated_export`,
`GeneratedChunks`, `generate_config`): chunk by chunk, they are the same bytes as
`write_export_file(generate_org(...))`, and the configuration served next to them is the
file's."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from close_fake import (
    FakeClose,
    GeneratedChunks,
    generate_config,
    generate_org,
    write_export_file,
    write_generated_export,
)
from close_fake import org as o
from close_fake.generate.chunks import chunk_bounds

LEAD_COLLECTIONS = {o.LEAD, o.CONTACT, o.OPPORTUNITY, o.TASK, o.ACTIVITY,
                    o.SEQUENCE_SUBSCRIPTION}  # fmt: skip


@pytest.mark.parametrize(
    ("generation", "shape", "chunk_leads"),
    [
        ({"seed": 1, "leads": 130, "activities_per_lead": 15}, {}, 25),
        ({"seed": 2, "leads": 61, "notes_per_lead": 3, "users": 3},
         {"layout": "jsonl", "custom_style": "both", "include_threads": True,
          "contact_lead_id": True}, 7),
        ({"seed": 3, "leads": 40, "activities_per_lead": 4, "contacts_per_lead": 0,
          "tasks_per_lead": 0}, {"custom_style": "keys", "include_tasks": False}, 1000),
        ({"seed": 4, "leads": 33}, {"export_type": "contacts", "spool_level": 1}, 10),
        ({"seed": 5, "leads": 0}, {}, 10),
    ],
)  # fmt: skip
def test_same_bytes_as_the_file_of_the_whole_org(
    generation: dict[str, Any], shape: dict[str, Any], chunk_leads: int, tmp_path: Path
) -> None:
    whole, chunked = tmp_path / "whole.json.gz", tmp_path / "chunked.json.gz"
    file_shape = {k: v for k, v in shape.items() if k != "spool_level"}
    expected = write_export_file(generate_org(**generation), whole, **file_shape)
    counts = write_generated_export(
        chunked, **generation, **shape, chunk_leads=chunk_leads, spool_dir=tmp_path
    )
    assert counts == expected
    assert chunked.read_bytes() == whole.read_bytes()
    assert {p.name for p in tmp_path.iterdir()} == {"whole.json.gz", "chunked.json.gz"}


def test_chunks_hold_exactly_the_orgs_objects(tmp_path: Path) -> None:
    org = generate_org(seed=8, leads=120, activities_per_lead=12)
    seen: dict[str, dict[str, Any]] = {name: {} for name in LEAD_COLLECTIONS}
    newest_before = None
    with GeneratedChunks(seed=8, leads=120, activities_per_lead=12, chunk_leads=25,
                         spool_dir=tmp_path) as chunks:  # fmt: skip
        assert len(chunks.bounds) == 5
        for part in chunks.orgs(reverse=True):
            for name, objs in part.collections.items():
                if name in LEAD_COLLECTIONS:
                    assert not set(objs) & set(seen[name])  # ids unique across chunks
                    seen[name].update(objs)
                else:
                    assert objs == org.collections[name]  # the configuration, whole
            oldest = min(lead["date_created"] for lead in part.all(o.LEAD))
            if newest_before is not None:
                assert max(lead["date_created"] for lead in part.all(o.LEAD)) < newest_before
            newest_before = oldest
    assert list(tmp_path.iterdir()) == []
    orphans = {t["id"] for t in org.all(o.TASK) if t["lead_id"] is None}
    assert orphans and not orphans & set(seen[o.TASK])  # tasks without a lead: not made
    for name in LEAD_COLLECTIONS:
        whole = {k: v for k, v in org.collections[name].items() if k not in orphans}
        assert seen[name] == whole, name


def test_chunks_end_between_different_times() -> None:
    times = [1, 1, 2, 3, 3, 3, 3, 4, 5, 5]
    assert chunk_bounds(times, 2) == [(0, 2), (2, 7), (7, 10)]  # type: ignore[arg-type]
    assert chunk_bounds(times, 100) == [(0, 10)]  # type: ignore[arg-type]
    assert chunk_bounds([], 3) == []
    with pytest.raises(ValueError):
        chunk_bounds(times, 0)  # type: ignore[arg-type]


def test_the_configuration_is_every_generated_orgs() -> None:
    config = generate_config(seed=9, users=4)
    for leads in (0, 7, 60):
        org = generate_org(seed=9, leads=leads, users=4)
        assert org.info == config.info and org.admin_user_id == config.admin_user_id
        for name, objs in config.collections.items():
            if name not in LEAD_COLLECTIONS:
                assert org.collections[name] == objs, name
    assert all(not config.collections[name] for name in LEAD_COLLECTIONS)
    assert config.all(o.CUSTOM_FIELD_LEAD) and config.all(o.USER)


def test_a_served_configuration_knows_every_field_and_user_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.json.gz"
    write_generated_export(path, seed=11, leads=50, activities_per_lead=15, layout="jsonl",
                           custom_style="keys", chunk_leads=20)  # fmt: skip
    docs = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert len(docs) == 50
    used_fields, used_users = set(), set()
    for doc in docs:
        for obj in [doc, *doc["contacts"], *doc["opportunities"], *doc["activities"]]:
            used_fields |= {k.removeprefix("custom.") for k in obj if k.startswith("custom.")}
            used_users |= {obj[k] for k in ("user_id", "created_by", "updated_by") if obj.get(k)}
    with (
        FakeClose(generate_config(seed=11)) as fake,
        httpx.Client(base_url=fake.base_url, auth=(fake.api_key, ""), timeout=10) as client,
    ):
        served_fields = {
            f["id"]
            for kind in ("lead", "contact", "opportunity", "activity", "shared")
            for f in client.get(f"custom_field/{kind}/").json()["data"]
        }
        served_users = {u["id"] for u in client.get("user/").json()["data"]}
        me = client.get("me/").json()
    assert used_fields and used_fields <= served_fields
    assert used_users and used_users <= served_users
    assert me["organizations"][0]["id"] == docs[0]["organization_id"]
