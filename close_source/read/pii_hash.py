"""`pii = "hash"`: every email address and phone number of an object replaced by its keyed hash
(HMAC-SHA256 with `pii_key`, 64 hex digits), the same input always the same hash, so joins and
counts on them still work (docs/configuration.md, "Personal data").

- email addresses: wherever they appear in text (a whole value, `Name <a@b.com>`, a body, a
  message id: anything shaped like an address), each one trimmed and lower-cased first;
- phone numbers: the values of the keys Close gives numbers under (`PHONE_KEYS`), reduced to
  their digits first, so `+1 650-333-4444`, `+16503334444` and `16503334444` hash alike.

A value that already is a hash is left as it is: objects are hashed once whichever way they
come (a backup's files were hashed when it was written).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

# Keys whose values are phone numbers in Close's objects (Close API: Contacts; Activities; Tasks;
# Users; Organizations; Phone Numbers; Dialer): contacts' phones, calls, SMS, tasks, users,
# memberships, the organisation's numbers, dialers.
PHONE_KEYS = frozenset({
    "phone", "phone_formatted", "local_phone", "local_phone_formatted", "remote_phone",
    "remote_phone_formatted", "user_phone", "number", "number_formatted", "phone_numbers",
    "phone_numbers_formatted", "forward_to", "forward_to_formatted", "caller_id",
})
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+")
HASHED = re.compile(r"[0-9a-f]{64}")
_NOT_DIGITS = re.compile(r"\D")
# what the key's fingerprint is the hash of: neither an address nor digits, so no value's hash
_FINGERPRINT_OF = "close-dlt: the pii_key's fingerprint"


class Hasher:
    """Hashes with one key; the key is held only inside the HMAC state, never shown."""

    def __init__(self, key: str) -> None:
        self._mac = hmac.new(key.encode(), digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "Hasher(pii_key hidden)"

    def hash(self, text: str) -> str:
        mac = self._mac.copy()
        mac.update(text.encode())
        return mac.hexdigest()

    def email(self, address: str) -> str:
        return self.hash(address.strip().lower())

    def phone(self, number: str) -> str:
        """The number's hash; a value with no digit (or a hash already) stays as it is."""
        if HASHED.fullmatch(number):
            return number
        digits = _NOT_DIGITS.sub("", number)
        return self.hash(digits) if digits else number

    def fingerprint(self) -> str:
        """Tells keys apart (kept in the state: a changed key is noticed), reveals nothing."""
        return self.hash(_FINGERPRINT_OF)[:16]

    def text(self, value: str) -> str:
        """A value that is an address becomes its hash (blanks around it go too); in longer
        text each address is replaced by its hash."""
        if "@" not in value:
            return value
        if EMAIL.fullmatch(value.strip()):
            return self.email(value)
        return EMAIL.sub(lambda found: self.email(found.group()), value)

    def walk(self, value: Any, key: str | None = None) -> Any:
        """The value with every address and number hashed: dicts changed in place, lists
        and texts returned anew."""
        kind = type(value)
        if kind is str:
            return self.phone(value) if key in PHONE_KEYS else self.text(value)
        if kind is dict:
            self.walk_object(value)
            return value
        if kind is list:
            return [self.walk(item, key) for item in value]
        return value

    def walk_object(self, obj: dict[str, Any]) -> None:
        """In place."""
        for key, value in obj.items():
            if type(value) in (str, dict, list):
                obj[key] = self.walk(value, key)
