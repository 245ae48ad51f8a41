"""The fake's HTTP face: the server, what one request goes through, the endpoint table.

`server.py` (`FakeClose`), `pipeline.py` (faults, auth, routing, rate limits, the request
log), `wire.py` (sockets), `routes.py` (`Router`) with `catalog.py`, `listing.py`,
`reads.py`, `field_writes.py`, and `faults.py` (`Faults`, `RateLimit`).
"""
