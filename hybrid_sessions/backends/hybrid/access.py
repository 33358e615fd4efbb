"""Dict access to a hybrid session: what the cookie holds without I/O, the rest fetched once.

A spilled cookie carries only some keys, and a cookie with server-only keys
lacks those: reading a key the cookie cannot answer for fetches the record
once, replaying onto it what the request already did.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

_MISSING: Any = object()


class PartialAccess:
    """The ``SessionBase`` dict API over a partly known session.

    The engine provides ``_partial``/``_apartial`` (the session as far as the
    cookie knows it) and ``_get_session``/``_aget_session`` (the whole of it).
    """

    accessed: bool
    modified: bool
    _pending: bool  # keys may be missing until the record is fetched
    _known: set[str]  # keys the unfetched session can answer for
    _complete_except: Collection[str]  # or, when not empty: every key but these
    _partial: Callable[[], dict[str, Any]]
    _get_session: Callable[..., dict[str, Any]]

    async def _apartial(self) -> dict[str, Any]:
        raise NotImplementedError

    async def _aget_session(self, no_load: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def _answers(self, key: Any) -> bool:
        """Whether the unfetched session can answer for ``key`` (always, once fetched)."""
        if not self._pending or key in self._known:
            return True
        except_ = self._complete_except
        return bool(except_) and isinstance(key, str) and key not in except_

    def _reset_access(self) -> None:
        self._pending = False
        self._known = set()
        self._complete_except = ()

    def _data_for(self, key: Any) -> dict[str, Any]:
        data = self._partial()
        return data if self._answers(key) else self._get_session()

    async def _adata_for(self, key: Any) -> dict[str, Any]:
        data = await self._apartial()
        return data if self._answers(key) else await self._aget_session()

    def __contains__(self, key: object) -> bool:
        return key in self._data_for(key)

    def has_key(self, key: Any) -> bool:
        return key in self

    async def ahas_key(self, key: Any) -> bool:
        return key in await self._adata_for(key)

    def __getitem__(self, key: str) -> Any:
        return self._data_for(key)[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data_for(key).get(key, default)

    async def aget(self, key: str, default: Any = None) -> Any:
        return (await self._adata_for(key)).get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._partial()[key] = value
        self._known.add(key)
        self.modified = True

    async def aset(self, key: str, value: Any) -> None:
        (await self._apartial())[key] = value
        self._known.add(key)
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._data_for(key)[key]
        self._known.add(key)
        self.modified = True

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        return self._pop(self._data_for(key), key, default)

    async def apop(self, key: str, default: Any = _MISSING) -> Any:
        return self._pop(await self._adata_for(key), key, default)

    def _pop(self, data: dict[str, Any], key: str, default: Any) -> Any:
        self.modified = self.modified or key in data
        self._known.add(key)
        return data.pop(key) if default is _MISSING else data.pop(key, default)
