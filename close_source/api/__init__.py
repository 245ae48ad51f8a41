"""Talking to Close over HTTP: the client, paging and search walks; it knows no tables."""
