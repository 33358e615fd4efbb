"""The Redis store's Lua scripts: each write is one script, one round trip, atomic.

The scripts never decode session data. Every write also maintains the user's
index and, when given a channel, publishes on the feed in the same script.

A save and a touch are the common writes, so they do only what they change:
one ``HSET`` of every field that moves, and the user's index only as far as
the save moves it. The same user's entry follows its expiry, the index's own
expiry follows its longest-lived entry, and expired entries are pruned when an
entry joins or leaves the index, and on every listing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

__all__ = [
    "COMPARE_AND_SET", "CREATE", "DELETE_MANY", "DELETE_USER", "POP", "TOUCH", "LuaScript",
]

# -- sources --------------------------------------------------------------------------------------

# Shared by the write scripts. ARGV: [1] digest, [2] now, [3] expiry (ms),
# [4] user id ('' for none), [5] IP ('' keeps it), [6] user agent ('' keeps it).
# KEYS[1] is the session hash, KEYS[2] (absent when anonymous) the user's index.
_PRELUDE = """
local function reindex(ix, now)
  redis.call('ZREMRANGEBYSCORE', ix, '-inf', '(' .. now)
  local top = redis.call('ZRANGE', ix, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', ix, top[2]) end
end
local function set_user(key, ix)
  local old = redis.call('HGET', key, 'ix')
  if old and old ~= ix then
    redis.call('ZREM', old, ARGV[1])
    reindex(old, ARGV[2])
  end
  if ix then
    redis.call('HSET', key, 'u', ARGV[4], 'ix', ix)
  else
    redis.call('HDEL', key, 'u', 'ix')
  end
end
local function extend(key, ix)
  local digest, now, exp = ARGV[1], ARGV[2], ARGV[3]
  redis.call('HSET', key, 'a', now, 'e', exp)
  if ARGV[5] ~= '' then redis.call('HSET', key, 'ip', ARGV[5]) end
  if ARGV[6] ~= '' then redis.call('HSET', key, 'ua', ARGV[6]) end
  redis.call('PEXPIREAT', key, exp)
  if ix then
    redis.call('ZADD', ix, exp, digest)
    reindex(ix, now)
  end
end
-- The fields a save or touch sets in one HSET: activity, expiry, the client.
local function moved()
  local fields = {'a', ARGV[2], 'e', ARGV[3]}
  if ARGV[5] ~= '' then fields[#fields + 1] = 'ip'; fields[#fields + 1] = ARGV[5] end
  if ARGV[6] ~= '' then fields[#fields + 1] = 'ua'; fields[#fields + 1] = ARGV[6] end
  return fields
end
-- A session staying in index ix, whose expiry was old_exp: its entry follows the
-- expiry, and the index lives as long as its longest-lived entry.
local function follow(ix, old_exp)
  if ARGV[3] == old_exp then return end
  redis.call('ZADD', ix, ARGV[3], ARGV[1])
  local top = redis.call('ZRANGE', ix, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', ix, top[2])
end
"""

# ARGV[7]: '1' when there is data, ARGV[8]: the data, ARGV[9]: when the session
# started, kept from its previous key ('' for now).
_CREATE = _PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local started = ARGV[9]
if not started or started == '' then started = ARGV[2] end
redis.call('HSET', KEYS[1], 'v', 1, 'c', started)
if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'd', ARGV[8]) end
set_user(KEYS[1], KEYS[2] or false)
extend(KEYS[1], KEYS[2] or false)
return 1
"""

# ARGV[7]: expected version, ARGV[8]: '1' when there is data, ARGV[9]: the data,
# ARGV[10]: the feed's channel ('' publishes nothing).
# Returns {1, new version}, {0} when the session is gone, or {0, version, data,
# expiry, user} (the state that won) when the version moved on.
# The common save (same user) is HMGET, HSET, PEXPIREAT, the entry's ZADD, ZRANGE
# and PEXPIREAT when signed in, and PUBLISH; a change of user runs the full path.
_COMPARE_AND_SET = _PRELUDE + """
local key, ix = KEYS[1], KEYS[2] or false
local cur = redis.call('HMGET', key, 'v', 'd', 'e', 'u', 'ix')
if not cur[1] then return {0} end
if cur[1] ~= ARGV[7] then return {0, cur[1], cur[2], cur[3], cur[4]} end
local version = tonumber(cur[1]) + 1
local fields = moved()
fields[#fields + 1] = 'v'; fields[#fields + 1] = version
if ARGV[8] == '1' then
  fields[#fields + 1] = 'd'; fields[#fields + 1] = ARGV[9]
elseif cur[2] then
  redis.call('HDEL', key, 'd')
end
local old = cur[5] or false
if ix and ix ~= old then
  fields[#fields + 1] = 'u'; fields[#fields + 1] = ARGV[4]
  fields[#fields + 1] = 'ix'; fields[#fields + 1] = ix
elseif old and not ix then
  redis.call('HDEL', key, 'u', 'ix')
end
redis.call('HSET', key, unpack(fields))
redis.call('PEXPIREAT', key, ARGV[3])
if old and old ~= ix then
  redis.call('ZREM', old, ARGV[1])
  reindex(old, ARGV[2])
end
if ix and ix ~= old then
  redis.call('ZADD', ix, ARGV[3], ARGV[1])
  reindex(ix, ARGV[2])
elseif ix then
  follow(ix, cur[3])
end
if ARGV[10] ~= '' then redis.call('PUBLISH', ARGV[10], ARGV[1] .. ':' .. version) end
return {1, version}
"""

# The data is not written, so neither is the user derived from it: a request
# that loaded before a concurrent login must not unlink the user.
_TOUCH = _PRELUDE + """
local cur = redis.call('HMGET', KEYS[1], 'v', 'e', 'ix')
if not cur[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(moved()))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
if cur[3] then follow(cur[3], cur[2]) end
return 1
"""

# ARGV: [1] digest, [2] now, [3] the feed's channel ('' publishes nothing).
# Returns what the session held, {version, data, expiry, user, created, last
# activity}, or {} if it was gone.
_POP = _PRELUDE + """
local cur = redis.call('HMGET', KEYS[1], 'v', 'd', 'e', 'u', 'ix', 'c', 'a')
if cur[1] then
  redis.call('DEL', KEYS[1])
  if cur[5] then
    redis.call('ZREM', cur[5], ARGV[1])
    reindex(cur[5], ARGV[2])
  end
end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[1] .. ':0') end
if not cur[1] then return {} end
return {cur[1], cur[2] or false, cur[3], cur[4] or false, cur[6] or false, cur[7] or false}
"""

# KEYS: [1] the index, [2..n] session hashes; ARGV: [1] now, [2] the feed's
# channel, [3..n+1] their digests. Returns the digests removed.
# A session that moved to another user meanwhile is left alone.
_DELETE_USER = _PRELUDE + """
local removed = {}
for i = 2, #KEYS do
  local digest = ARGV[i + 1]
  if redis.call('HGET', KEYS[i], 'ix') == KEYS[1] then
    if redis.call('DEL', KEYS[i]) == 1 then
      removed[#removed + 1] = digest
      if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], digest .. ':0') end
    end
  end
  redis.call('ZREM', KEYS[1], digest)
end
reindex(KEYS[1], ARGV[1])
return removed
"""


# KEYS: session hashes; ARGV: [1] now, [2] the feed's channel, [3..n+2] their digests.
# Returns the digests removed.
_DELETE_MANY = _PRELUDE + """
local removed = {}
for i = 1, #KEYS do
  local digest = ARGV[i + 2]
  local ix = redis.call('HGET', KEYS[i], 'ix')
  if redis.call('DEL', KEYS[i]) == 1 then
    removed[#removed + 1] = digest
    if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], digest .. ':0') end
  end
  if ix then
    redis.call('ZREM', ix, digest)
    reindex(ix, ARGV[1])
  end
end
return removed
"""


class LuaScript:
    """A script run by its SHA-1 (``EVALSHA``), sent in full only when the server lacks it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # EVAL runs it and caches it on the server for the next EVALSHA.
            return client.eval(self.source, len(keys), *keys, *args)


CREATE = LuaScript(_CREATE)
COMPARE_AND_SET = LuaScript(_COMPARE_AND_SET)
TOUCH = LuaScript(_TOUCH)
POP = LuaScript(_POP)
DELETE_USER = LuaScript(_DELETE_USER)
DELETE_MANY = LuaScript(_DELETE_MANY)
