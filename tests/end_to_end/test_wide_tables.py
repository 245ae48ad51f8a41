"""Hundreds of custom fields on one object type: DuckDB needs memory per column to load such a
table, more than the 64 MB an ordinary load gets. Each load is sized from the files it is about
to load, so the first run's load succeeds the first time, as later runs' do."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

from close_fake import FakeClose, generate_org
from close_fake import changes as c
from close_fake import org as o
from close_fake.mutations import add_field
from close_source.run.load_memory import FLOOR_MB
from tests.helpers import rows, sync
from tests.invariant import every_table_mismatches

FIELDS = 400


def test_a_table_of_400_custom_fields_loads_the_first_time(tmp_path: Path, caplog):
    org = generate_org(seed=95, leads=2_000)
    field_ids = [add_field(org, "lead", f"Wide field {i}", "text")["id"] for i in range(FIELDS)]
    for lead in list(org.all(o.LEAD)):
        org.put(o.LEAD, {**lead, **{f"custom.{field_id}": f"value {i} of {lead['id'][-6:]}"
                                    for i, field_id in enumerate(field_ids)}})
    with FakeClose(org) as fake, caplog.at_level(logging.INFO, logger="close_source"):
        pipeline = sync(fake, tmp_path)
        assert "ran out of its" not in caplog.text
        limits = [int(mb) for mb in re.findall(r"DuckDB loads with (\d+) MB", caplog.text)]
        assert limits and limits[-1] > FLOOR_MB  # sized up for the wide table's files
        caplog.clear()
        org.advance(timedelta(minutes=10))
        lead = org.all(o.LEAD)[0]
        c.update(org, o.LEAD, lead["id"], {"name": "Widely renamed"})
        org.advance(timedelta(seconds=30))
        sync(fake, tmp_path, pipeline=pipeline)
        assert "ran out of its" not in caplog.text
    assert not every_table_mismatches(org, pipeline)
    columns = rows(pipeline, "SELECT count(*) FROM information_schema.columns "
                             "WHERE table_schema = 'close' AND table_name = 'leads'")[0][0]
    assert columns > FIELDS
