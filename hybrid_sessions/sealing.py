"""Server-stored session data sealed with a key that only the session's holder has.

With ``HYBRID_SESSIONS_ENCRYPT_SERVER_DATA``, every server engine (``db``,
``cache`` and the hybrid's store) writes a session's data encrypted with
AES-256-GCM under a key derived from the session key. Stores keep only the
key's SHA-256 digest, never the key, so a database or Redis dump, a replica or
an operator with read access holds ciphertext and a digest, and neither gives
the key. Whoever holds the cookie (the browser, or code given the session key)
reads the session as before; the admin and the statistics see sizes and
metadata only.

Sealing happens at the one place data meets a store: the operations a session's
flows yield (:mod:`hybrid_sessions.stores.operations`). Loading, merging after a
lost race and carrying data to a new key work on plain data, as without the
option. Sealed data is opened whether the option is on or off, and plain data
is read as it is, so turning the option on or off logs no one out: each record
changes form at its next write.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .exceptions import SessionStoreUnavailable
from .stores.base import CasResult, SessionMeta, StoredSession
from .stores.operations import (
    Build,
    CompareAndSet,
    Create,
    Flow,
    Get,
    Operation,
    Pop,
    R,
    UpdateLocked,
)

__all__ = ["MAGIC", "Sealer", "is_sealed", "sealed"]

security_logger = logging.getLogger("django.security.SuspiciousSession")

#: What sealed data starts with: a NUL byte, which no JSON, pickle protocol 2+
#: or signed value starts with, then a format version.
MAGIC = b"\x00hs-aead1"
_NONCE_BYTES = 12
#: Binds derived keys to this use, so the key cannot serve anywhere else.
_INFO = b"hybrid_sessions: server data, AES-256-GCM"


def is_sealed(data: bytes | memoryview | None) -> bool:
    """Whether stored data is sealed (readable only with the session key)."""
    return data is not None and bytes(data[: len(MAGIC)]) == MAGIC


class Sealer:
    """Seals and opens the data of the one record a session's flow works on.

    The AES key is derived (HKDF-SHA256) from the session key only when first
    needed: a session whose data is plain and that writes nothing sealed pays
    nothing.
    """

    __slots__ = ("_aead", "_session_key", "digest", "enabled", "read_plain")

    def __init__(self, session_key: str, digest: str, *, enabled: bool) -> None:
        self._session_key = session_key
        self.digest = digest
        self.enabled = enabled
        self._aead: AESGCM | None = None
        #: Whether the record last read held data in the clear while the option is on:
        #: written before it was, and readable at rest until it is written again.
        self.read_plain = False

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
            self._aead = AESGCM(hkdf.derive(self._session_key.encode()))
        return self._aead

    def seal(self, data: bytes | None) -> bytes | None:
        """``data`` as the store should keep it (sealed while the option is on)."""
        if not self.enabled or data is None:
            return data
        nonce = os.urandom(_NONCE_BYTES)
        # The digest is authenticated too: sealed data moved to another record does not open.
        return MAGIC + nonce + self._cipher().encrypt(nonce, data, self.digest.encode())

    def open(self, data: bytes | None) -> bytes | None:
        """Stored data as plain bytes; undecryptable data reads as empty (and is logged)."""
        if data is None or not is_sealed(data):
            return data
        body = bytes(data[len(MAGIC) :])
        try:
            return self._cipher().decrypt(
                body[:_NONCE_BYTES], body[_NONCE_BYTES:], self.digest.encode()
            )
        except (InvalidTag, ValueError):
            security_logger.warning("Session data could not be decrypted; serving it as empty.")
            return b""

    # -- what goes to and comes from the store ------------------------------------

    def outgoing(self, op: Operation[Any]) -> Operation[Any]:
        if getattr(op, "digest", None) != self.digest:
            return op
        if isinstance(op, Create | CompareAndSet) and self.enabled:
            return replace(op, data=self.seal(op.data))
        if isinstance(op, UpdateLocked):
            return UpdateLocked(op.digest, self._sealing_build(op.build))
        return op

    def incoming(self, op: Operation[Any], result: Any) -> Any:
        if getattr(op, "digest", None) != self.digest:
            return result
        if isinstance(op, Get):
            self.read_plain = self._plain_at_rest(result)
        if isinstance(op, Get | Pop):
            return self._opened(result)
        if isinstance(op, CompareAndSet | UpdateLocked) and isinstance(result, CasResult):
            return replace(result, current=self._opened(result.current))
        return result

    def _plain_at_rest(self, record: StoredSession | None) -> bool:
        return self.enabled and record is not None and bool(record.data) and not is_sealed(
            record.data
        )

    def _opened(self, record: StoredSession | None) -> StoredSession | None:
        if record is None or not is_sealed(record.data):
            return record
        return replace(record, data=self.open(record.data))

    def _sealing_build(self, build: Build) -> Build:
        def sealing(current: StoredSession) -> tuple[bytes | None, SessionMeta]:
            opened = self._opened(current)
            assert opened is not None
            data, meta = build(opened)
            return self.seal(data), meta

        return sealing


def sealed(flow: Flow[R], sealer: Sealer) -> Flow[R]:
    """``flow`` with its record's data sealed on the way to the store and opened on the way back."""
    try:
        op = next(flow)
        while True:
            try:
                result = yield sealer.outgoing(op)
            except SessionStoreUnavailable as exc:
                op = flow.throw(exc)
            else:
                op = flow.send(sealer.incoming(op, result))
    except StopIteration as stop:
        value: R = stop.value
        return value
