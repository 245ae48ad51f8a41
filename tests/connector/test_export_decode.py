"""Decoding export files: gzip or already decoded, JSON array or JSON lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from close_source.read.custom_fields import RawDefinitions
from close_source.read.export import ExportRouter
from close_source.read.export_file import ExportFailed, iter_leads
from close_source.shape.custom_columns import CustomColumns

LEADS = [{"id": f"lead_{i}", "name": f"Lead {i}", "custom": {"Tier": "Gold"},
          "activities": [{"_type": "Note", "id": f"acti_{i}"}, {"_type": "Hologram", "id": "x"}],
          "contacts": [{"id": f"cont_{i}", "custom": {"Tier": "Silver"}}]} for i in range(3)]


def _write(path: Path, text: str, compressed: bool) -> Path:
    path.write_bytes(gzip.compress(text.encode()) if compressed else text.encode())
    return path


@pytest.mark.parametrize("compressed", [True, False], ids=["gzip", "decoded"])
@pytest.mark.parametrize("layout", ["array", "jsonl", "pretty"])
def test_every_layout_with_or_without_gzip(tmp_path, compressed, layout):
    text = {
        "array": json.dumps(LEADS),
        "jsonl": "\n".join(json.dumps(lead) for lead in LEADS) + "\n\n",
        "pretty": "\n  " + json.dumps(LEADS, indent=2),
    }[layout]
    path = _write(tmp_path / "export.json.gz", text, compressed)
    assert list(iter_leads(path)) == LEADS


def test_an_empty_export_has_no_leads(tmp_path):
    assert list(iter_leads(_write(tmp_path / "e.json.gz", "[]", True))) == []
    assert list(iter_leads(_write(tmp_path / "f.json.gz", "", True))) == []


def test_anything_else_is_a_clear_error(tmp_path):
    with pytest.raises(ExportFailed, match="neither a JSON array nor JSON lines"):
        list(iter_leads(_write(tmp_path / "e.json.gz", "<html>", True)))


def test_router_routes_and_display_names_map_to_columns(caplog):
    raw = RawDefinitions({
        "lead": [{"id": "cf_lead_tier", "name": "Tier", "type": "text"}],
        "shared": [{"id": "cf_shared", "name": "Region", "type": "text",
                    "associations": [{"object_type": "contact"}]}],
        "contact": [{"id": "cf_contact_tier", "name": "Tier", "type": "text"}],
    }, {})
    custom = CustomColumns("name", None, lambda: raw)
    router = ExportRouter({"leads", "contacts", "notes"})
    lead = json.loads(json.dumps(LEADS[0]))
    routed = {entry.table: obj for entry, obj in router.route(lead)}
    assert custom.split("leads", routed["leads"]) == {"custom_tier": "Gold"}
    assert "custom" not in routed["leads"]
    assert custom.split("contacts", routed["contacts"]) == {"custom_tier": "Silver"}
    assert routed["contacts"]["lead_id"] == "lead_0"
    assert routed["notes"]["lead_id"] == "lead_0"
    assert "Hologram" in caplog.text
    assert router.counts == {"contacts": 1, "notes": 1, "leads": 1}


TRICKY = [
    {"id": "lead_a", "merged": [{"id": "lead_x", "n": 1}, {"id": "lead_y", "n": 2}],
     "note": '},{"id":"lead_z"} inside a string', "big": 2**70},
    {"id": "lead_b", "activities": [{"id": "acti_1"}, {"id": "acti_2"}]},
    {"name": "keys in another order", "id": "lead_c"},
    {"id": "lead_d", "n": 1.5},
    {"id": "lead_e", "n": None},
]


@pytest.mark.parametrize("leads", [TRICKY[:2] + TRICKY[3:], TRICKY, TRICKY[2:3]],
                         ids=["split", "falls-back-midway", "falls-back-at-once"])
def test_an_array_is_split_exactly_as_a_json_parser_reads_it(tmp_path, leads):
    """Boundaries inside nested values or strings, integers beyond 64 bits, and a lead whose
    keys come in another order (the rest is decoded on from where the split stopped)."""
    text = json.dumps(leads, separators=(",", ":"))
    assert list(iter_leads(_write(tmp_path / "e.json.gz", text, True))) == leads


def test_a_truncated_file_fails_instead_of_ending_early(tmp_path):
    whole = gzip.compress(json.dumps(LEADS * 200, separators=(",", ":")).encode())
    path = tmp_path / "cut.json.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ExportFailed, match="the export file is damaged"):
        list(iter_leads(path))
