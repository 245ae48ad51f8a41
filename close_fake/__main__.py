"""Serve a fake Close organisation until Ctrl-C:

python -m close_fake --port 8000 --seed 1 --leads 100 --api-key KEY

A slow link and Close's limits: `--latency-ms 150 --rate-limit 20 --export-seconds 6` (each
request answered 150 ms later, 20 requests a second per endpoint group, exports built in 6 s).
"""

from __future__ import annotations

import argparse
import threading

from .exports.settings import ExportSettings
from .generate import generate_org
from .http.faults import RateLimit
from .http.server import DEFAULT_API_KEY, FakeClose


def build(argv: list[str] | None = None) -> FakeClose:
    """The fake the command line asks for, generated and not yet serving."""
    parser = argparse.ArgumentParser(
        prog="python -m close_fake", description="Serve a seeded fake Close API on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--leads", type=int, default=50)
    parser.add_argument("--contacts-per-lead", type=int, default=2)
    parser.add_argument("--opportunities-per-lead", type=int, default=1)
    parser.add_argument("--tasks-per-lead", type=int, default=2)
    parser.add_argument("--activities-per-lead", type=int, default=11)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="round trip of every request (a new connection waits one more)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=0,
        help="requests a second per endpoint group, then 429 (0: counted, never refused)",
    )
    parser.add_argument(
        "--export-seconds",
        type=float,
        default=0.0,
        help="an export is done no sooner than this long after it was requested",
    )
    parser.add_argument(
        "--export-polls",
        type=int,
        default=3,
        help="... and no sooner than this many polls of it (0: time alone)",
    )
    args = parser.parse_args(argv)

    org = generate_org(
        seed=args.seed,
        leads=args.leads,
        contacts_per_lead=args.contacts_per_lead,
        opportunities_per_lead=args.opportunities_per_lead,
        tasks_per_lead=args.tasks_per_lead,
        activities_per_lead=args.activities_per_lead,
        users=args.users,
    )
    return FakeClose(
        org,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        latency=args.latency_ms / 1000,
        rate_limit=RateLimit(args.rate_limit) if args.rate_limit else None,
        export=ExportSettings(
            polls_to_finish=args.export_polls, seconds_to_finish=args.export_seconds
        ),
    )


def main(argv: list[str] | None = None) -> None:
    with build(argv) as fake:
        print(f"Fake Close API at {fake.base_url}", flush=True)
        print(f"API key: {fake.api_key}  (HTTP Basic: key as username, blank password)", flush=True)
        print(f"Organization: {fake.org.organization_id}  (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
