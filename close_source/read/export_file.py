"""An export file -> its leads, one at a time, memory bounded by one lead.

Both layouts are read: one JSON document per line (orjson per line), and a top-level JSON array
(Close does not document which). Speed (bench/): a decompressing thread keeps the next few MB
ready (zlib releases the GIL, so it runs on another core), and an array is split into its
elements without a streaming parser where it can be: each lead begins `{"id":"lead_`, so a
candidate boundary is `},{"id":"lead_` and orjson parses the piece before it (~3x ijson's
speed). A piece that does not parse was cut inside a nested value (a list of objects whose
first key is an id like a lead's) and is joined with the next one: a boundary inside a
string is impossible, since a string's quotes are escaped. A file that does not look like
that (keys in another order, whitespace, a lead over 64 MB) is read on by the standard
library's decoder on a sliding window (as fast as ijson was), from where the split stopped.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from close_source.errors import CloseSyncError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
READ_AHEAD = 8  # decompressed chunks kept ready by the thread
BOUNDARY = b'},{"id":"lead_'
MAX_PIECE = 64 << 20  # a piece this long without a boundary: not the expected layout


class ExportFailed(CloseSyncError):
    """The export job failed, timed out or could not be downloaded or read."""


def iter_leads(path: Path, progress: Callable[[int], None] | None = None,
               every: int = 500) -> Iterator[dict[str, Any]]:
    """Leads one at a time from either layout. `progress` is told, every `every` leads, how
    many bytes of the file were read."""
    with _ReadAhead(path) as decoded:
        stream = io.BufferedReader(decoded, buffer_size=CHUNK)
        first = _first_significant_byte(stream)
        if first == b"[":
            leads: Iterator[dict[str, Any]] = _array(stream)
        elif first == b"{":
            leads = (orjson.loads(line) for line in stream if line.strip())
        elif first:
            raise ExportFailed(f"the export file is neither a JSON array nor JSON lines "
                               f"(starts with {first!r})")
        else:
            return
        for count, lead in enumerate(leads, 1):
            yield lead
            if progress is not None and count % every == 0:
                progress(decoded.file_position)


def _array(stream: io.BufferedReader) -> Iterator[dict[str, Any]]:
    """The array's elements: split at lead boundaries while the file is laid out that way,
    then by a streaming JSON decoder from the element where the split stopped."""
    buffer = stream.read(CHUNK).lstrip()
    if buffer[:1] != b"[":  # pragma: no cover - the caller saw the `[`
        raise ExportFailed("the export file's JSON array does not begin with [")
    buffer, start, pending, ended = buffer[1:], 0, b"", False
    while True:
        cut = buffer.find(BOUNDARY, start)
        if cut < 0:
            if ended or len(pending) + len(buffer) - start > MAX_PIECE:
                break  # the last element, or not laid out as expected: the decoder goes on
            more = stream.read(CHUNK)
            ended = not more
            buffer, start = buffer[start:] + more, 0
            continue
        piece = pending + buffer[start:cut + 1]
        lead = _parse(piece)
        if lead is None:  # cut inside a nested value: the boundary's `,` belongs to it
            pending = piece + b","
            start = cut + 2
            if len(pending) > MAX_PIECE:
                break
            continue
        start = cut + 2  # the next element begins at the boundary's `{`
        pending = b""
        yield lead
    yield from _decoded_elements(pending + buffer[start:], stream)


def _parse(piece: bytes) -> dict[str, Any] | None:
    """One element, or None if the piece is not a whole JSON object."""
    try:
        value = orjson.loads(piece)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses and JSON allows: integers beyond 64 bits
            value = json.loads(piece)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _decoded_elements(first: bytes, stream: io.BufferedReader) -> Iterator[dict[str, Any]]:
    """The rest of an array (its `[` read), element by element, with the standard library's
    decoder on a sliding window: any layout, memory bounded by one element."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    text, at, ended, after_element = utf8.decode(first), 0, False, False
    while True:
        while at < len(text) and (text[at].isspace() or (after_element and text[at] == ",")):
            after_element = after_element and text[at] != ","
            at += 1
        if at < len(text) and text[at] == "]":
            return
        if at < len(text):
            try:
                element, end = decoder.raw_decode(text, at)
            except json.JSONDecodeError as exc:
                if ended:
                    raise ExportFailed(f"the export file is not valid JSON ({exc.msg})") from None
            else:
                if not isinstance(element, dict):
                    raise ExportFailed("the export file's array holds something else than leads")
                yield element
                at, after_element = end, True
                continue
        if ended:
            raise ExportFailed("the export file ends inside its JSON array")
        more = stream.read(CHUNK)
        ended = not more
        text, at = text[at:] + utf8.decode(more, final=ended), 0


def _first_significant_byte(stream: io.BufferedReader) -> bytes:
    while True:
        chunk = stream.peek(64)
        if not chunk:
            return b""
        stripped = chunk.lstrip()
        if stripped:
            return stripped[:1]
        stream.read(len(chunk))


class _ReadAhead(io.RawIOBase):
    """The file's decoded bytes (gunzipped when it is gzip), read ahead by a thread."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._raw = open(path, "rb")  # noqa: SIM115 - closed with this reader
        magic = self._raw.read(2)
        self._raw.seek(0)
        self._decoded: IO[bytes] = gzip.GzipFile(fileobj=self._raw, mode="rb") \
            if magic == GZIP_MAGIC else self._raw
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(READ_AHEAD)
        self._stop = threading.Event()
        self._rest = b""
        self._ended = False
        self.file_position = 0  # bytes of the file (compressed) consumed so far
        self._thread = threading.Thread(target=self._read, name="export-read-ahead",
                                        daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._decoded.read(CHUNK)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if not self._rest and not self._ended:
            item = self._chunks.get()
            if isinstance(item, (EOFError, OSError, zlib.error)):  # gzip's damaged stream
                raise ExportFailed(f"the export file is damaged ({item})") from item
            if isinstance(item, BaseException):
                raise item
            self._rest, self._ended = item, not item
            self.file_position = self._raw.tell()
        size = min(len(target), len(self._rest))
        target[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            self._thread.join()
            self._decoded.close()
            self._raw.close()
        super().close()
