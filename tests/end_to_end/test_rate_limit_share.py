"""`rate_limit_share = 0.5`: a full load holds half of each endpoint group's limit, measured by
the fake Close's own count of the requests in each of its windows, and loads every table exact.

The fake's limiter counts without refusing (`enforce=False`: its headers are truthful, it never
answers 429), so what is measured is the client's own restraint, not Close's."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from close_fake import FakeClose, RateLimit, generate_org
from tests.helpers import sync
from tests.invariant import every_table_mismatches

SHARE = 0.5
# a lighter group with a lower limit than the others ("a higher limit on lightweight
# requests", Close API: Rate Limits); even limits: half of each is a whole number of requests
LIMITS = RateLimit(10, 1.0, enforce=False, groups={"GET /contact/": 6})
# small pages: several windows' worth of requests in the busiest groups, in a few seconds
PAGE_CAPS = {"/lead/": 4, "/contact/": 4, "/opportunity/": 4, "/task/": 8}


@pytest.fixture(scope="module")
def org():
    return generate_org(seed=27, leads=20, contacts_per_lead=1)


@pytest.fixture(scope="module")
def loaded(org, tmp_path_factory):
    """One full load with the share set as users set it (SOURCES__CLOSE__RATE_LIMIT_SHARE);
    per endpoint group: its limit, and how many of its requests each window counted."""
    workdir = tmp_path_factory.mktemp("rate_limit_share")
    with pytest.MonkeyPatch.context() as env, \
            FakeClose(org, rate_limit=LIMITS, page_caps=PAGE_CAPS) as fake:
        env.setenv("SOURCES__CLOSE__RATE_LIMIT_SHARE", str(SHARE))
        pipeline = sync(fake, workdir, full_load="lists")
        counted = [r for r in fake.requests if r.rate is not None]
    windows: dict[str, Counter[float]] = defaultdict(Counter)
    limits: dict[str, int] = {}
    for record in counted:
        group = f"{record.method} {record.endpoint}"
        windows[group][record.rate.window_start] += 1
        limits[group] = record.rate.limit
    return pipeline, windows, limits


def test_each_endpoint_group_is_held_to_half_its_limit(loaded):
    _, windows, limits = loaded
    held = {group: max(counts.values()) / limits[group] for group, counts in windows.items()}
    assert all(share <= SHARE for share in held.values()), held
    # the groups with more requests than half a window: their busiest window holds the share
    busy = {group: share for group, share in held.items()
            if sum(windows[group].values()) > SHARE * limits[group]}
    assert {"GET /contact/", "GET /lead/", "GET /task/", "GET /event/"} <= set(busy), held
    assert all(abs(share - SHARE) <= 0.1 * SHARE for share in busy.values()), busy
    assert limits["GET /contact/"] == 6 and max(windows["GET /contact/"].values()) == 3


def test_the_tables_are_exact(loaded, org):
    pipeline, _, _ = loaded
    assert every_table_mismatches(org, pipeline) == {}
