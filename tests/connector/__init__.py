"""Tests of the connector's modules, each on its own (the fake Close over loopback where a
server is needed, httpx.MockTransport where a transport is enough)."""
