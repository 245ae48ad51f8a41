"""Serve a fake Close organisation until Ctrl-C:

python -m close_fake --port 8000 --seed 1 --leads 100 --api-key KEY
"""

from __future__ import annotations

import argparse
import threading

from .generate import generate_org
from .http.server import DEFAULT_API_KEY, FakeClose


def main(argv: list[str] | None = None) -> None:
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
    fake = FakeClose(org, api_key=args.api_key, host=args.host, port=args.port)
    with fake:
        print(f"Fake Close API at {fake.base_url}", flush=True)
        print(f"API key: {args.api_key}  (HTTP Basic: key as username, blank password)", flush=True)
        print(f"Organization: {org.organization_id}  (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
