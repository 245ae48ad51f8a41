"""Shared fixtures: a fake Close over loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from close_source.fake import FakeClose, generate_org


@pytest.fixture
def small_fake() -> Iterator[FakeClose]:
    with FakeClose(generate_org(seed=11, leads=12)) as fake:
        yield fake
