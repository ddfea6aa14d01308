"""RedisStore: the prediction store several replicas share.

Each prediction is a hash ``{prefix}p:{id}`` (fields m, v, c, k, t; ``s`` the served scores as
raw bytes when kept, service.monitor.stores.scores; ``l`` once labelled) with a TTL of retention +
grace, indexed by creation time in the sorted set ``{prefix}bytime`` (capacity); eviction and purge
delete the hash, scores with it. ``served_rows`` pages through ``bytime`` by score, one script
call per page of ``_PAGE`` ids (the ZRANGEBYSCORE and the HMGET of each id run in the server,
only the rows of the model asked for come back): its cost is O(log N + rows of every model in the
window), so a window of a model that shares the server with busier ones also scans theirs; each
page holds the server for one script of 1000 hash reads (5 to 9 ms on the 2-vCPU VM at load 8).
``put`` and ``resolve`` are Lua scripts, which Redis runs atomically: two replicas receiving the
same label cannot both accept it. Durability is the server's (``appendonly yes`` with
``appendfsync always`` for the SQLite guarantee). Keys are built inside the scripts, so use a single
Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import redis

from service.monitor.errors import StoreError
from service.monitor.stores.store import (
    Outcome,
    PredictionRecord,
    Resolution,
    ServedRows,
    StoredRow,
    StoreLimits,
    check_labels,
    served_rows_of,
)

# ARGV: prefix, ttl_ms, capacity, purge_before, then (id, model, version, conf, pred, created,
# scores: raw bytes, '' when not kept)*
_PUT_LUA = """
local prefix, ttl, capacity, purge_before = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local zset = prefix .. 'bytime'
for i = 5, #ARGV, 7 do
  local key = prefix .. 'p:' .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'm', ARGV[i+1], 'v', ARGV[i+2], 'c', ARGV[i+3], 'k', ARGV[i+4],
               't', ARGV[i+5])
    if ARGV[i+6] ~= '' then redis.call('HSET', key, 's', ARGV[i+6]) end
    redis.call('PEXPIRE', key, ttl)
    redis.call('ZADD', zset, ARGV[i+5], ARGV[i])
  end
end
local old = redis.call('ZRANGEBYSCORE', zset, '-inf', '(' .. purge_before)
for _, id in ipairs(old) do redis.call('DEL', prefix .. 'p:' .. id) end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', zset, '-inf', '(' .. purge_before) end
local excess = redis.call('ZCARD', zset) - capacity
if excess > 0 then
  local victims = redis.call('ZPOPMIN', zset, excess)
  local pending = 0
  for j = 1, #victims, 2 do
    local key = prefix .. 'p:' .. victims[j]
    if redis.call('EXISTS', key) == 1 and redis.call('HEXISTS', key, 'l') == 0 then
      pending = pending + 1
    end
    redis.call('DEL', key)
  end
  if pending > 0 then redis.call('INCRBY', prefix .. 'evicted', pending) end
end
return 0
"""

# ARGV: prefix, now, expired_before, then (id, label)*; one reply per label, in order.
_RESOLVE_LUA = """
local prefix, now, expired_before = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 2 do
  local key = prefix .. 'p:' .. ARGV[i]
  local rec = redis.call('HMGET', key, 'm', 'v', 'c', 'k', 't', 'l', 's')
  if not rec[1] then
    out[#out + 1] = {'unknown'}
  elseif rec[6] then
    out[#out + 1] = {'duplicate'}
  elseif tonumber(rec[5]) < expired_before then
    out[#out + 1] = {'expired'}
  else
    redis.call('HSET', key, 'l', ARGV[i+1], 'la', now)
    out[#out + 1] = {'accepted', rec[1], rec[2], rec[3], rec[4], rec[5], rec[7] or ''}
  end
end
return out
"""
# One page of the time index, read for served_rows. ARGV: prefix, model, version, low (inclusive),
# high ('(' exclusive), offset, count. Reply: ids scanned, last score, how many of them had it,
# and one string packing (id, created, scores, label or '') of each scanned row of (model,
# version) with scores, each field a 4-byte big-endian length then its bytes: one reply element
# per page, not four per row (redis-py's pure-Python parser costs about 10 us per element).
_WINDOW_LUA = """
local prefix = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', prefix .. 'bytime', ARGV[4], ARGV[5], 'WITHSCORES',
                       'LIMIT', ARGV[6], ARGV[7])
local last = ids[#ids] or ''
local tied, parts = 0, {}
for j = 1, #ids, 2 do
  if ids[j + 1] == last then tied = tied + 1 end
  local r = redis.call('HMGET', prefix .. 'p:' .. ids[j], 'm', 'v', 't', 's', 'l')
  if r[1] == ARGV[2] and r[2] == ARGV[3] and r[4] then
    local label = r[5] or ''
    parts[#parts + 1] = struct.pack('>I4', #ids[j]) .. ids[j] .. struct.pack('>I4', #r[3]) .. r[3]
      .. struct.pack('>I4', #r[4]) .. r[4] .. struct.pack('>I4', #label) .. label
  end
end
return {#ids / 2, last, tied, table.concat(parts)}
"""
_LENGTH = struct.Struct(">I")
_BATCH = 1000  # records or labels per script call (put batches need not be atomic as a whole)
_PAGE = 1000  # ids per page of served_rows (one script call each)
_FIELDS = ["m", "v", "c", "k", "t", "s"]


class RedisStore:
    """PredictionStore on a Redis server shared by replicas; see service.monitor.stores.store."""

    def __init__(self, url: str, limits: StoreLimits | None = None, prefix: str = "candor:") -> None:
        self.where = _redacted(url)
        self.limits = limits or StoreLimits()
        self.prefix = prefix
        self._client: redis.Redis = redis.Redis.from_url(url)  # bytes replies: scores are binary
        self._put_script = self._client.register_script(_PUT_LUA)
        self._resolve_script = self._client.register_script(_RESOLVE_LUA)
        self._window_script = self._client.register_script(_WINDOW_LUA)

    def put(self, records: Sequence[PredictionRecord]) -> None:
        """Insert new predictions, purge those past retention + grace, then enforce capacity."""
        ttl_ms = str(int(self.limits.keep_seconds * 1000))
        for start in range(0, len(records), _BATCH):
            batch = records[start : start + _BATCH]
            purge_before = max(r.created_at for r in batch) - self.limits.keep_seconds
            args: list[str | bytes] = [self.prefix, ttl_ms, str(self.limits.capacity), repr(purge_before)]
            for r in batch:
                args += [
                    r.prediction_id,
                    r.model,
                    r.version,
                    repr(float(r.confidence)),
                    str(int(r.predicted)),
                    repr(float(r.created_at)),
                    r.scores or b"",
                ]
            self._run(self._put_script, args)

    def fetch(self, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """Stored records of these ids, labelled or not (one pipelined round trip, read-only)."""
        unique = list(dict.fromkeys(ids))

        records = (_record(pid, fields) for pid, fields in zip(unique, self._read_hashes(unique, _FIELDS), strict=True))
        return {record.prediction_id: record for record in records if record is not None}

    def served_rows(self, model: str, version: str, since: float, until: float) -> ServedRows:
        """Stored rows of (model, version) created in [since, until) with scores (module
        docstring for the cost); a plain read, not a snapshot: rows put meanwhile may appear."""
        rows: list[StoredRow] = []
        low, skip, high = float(since), 0, "(" + repr(float(until))
        while True:
            args: list[str | bytes] = [self.prefix, model, version, repr(low), high, str(skip), str(_PAGE)]
            scanned, last, tied, packed = self._run(self._window_script, args)
            rows += _unpack_rows(packed)
            if int(scanned) < _PAGE:
                return served_rows_of(rows)
            # the next page starts at the last score, past the ids of that score already read
            skip = int(tied) + (skip if float(last) == low else 0)
            low = float(last)

    def _read_hashes(self, ids: Sequence[str], fields: list[str]) -> list[list[bytes | None]]:
        """HMGET of ``fields`` for each id, one pipelined round trip (None where absent)."""

        def read() -> list[list[bytes | None]]:
            pipe = self._client.pipeline(transaction=False)
            for pid in ids:
                pipe.hmget(self.prefix + "p:" + pid, fields)
            return list(pipe.execute())

        result: list[list[bytes | None]] = self._call(read)
        return result

    def resolve(self, labels: Sequence[tuple[str, int]], now: float) -> list[Resolution]:
        """Join labels to stored predictions; each script call is atomic across replicas."""
        check_labels(labels)
        expired_before = repr(now - self.limits.retention_seconds)
        out: list[Resolution] = []
        for start in range(0, len(labels), _BATCH):
            batch = labels[start : start + _BATCH]
            args: list[str | bytes] = [self.prefix, repr(now), expired_before]
            for pid, label in batch:
                args += [pid, str(int(label))]
            replies = self._run(self._resolve_script, args)
            pairs = zip(batch, replies, strict=True)
            out += [_resolution(pid, int(label), reply) for (pid, label), reply in pairs]
        return out

    def evicted(self) -> int:
        """Unlabelled records dropped for capacity, by any replica sharing this prefix."""
        value = self._call(lambda: self._client.get(self.prefix + "evicted"))
        return int(value or 0)

    def __len__(self) -> int:
        """Records in the time index (TTL-expired ones linger until the next purge)."""
        return int(self._call(lambda: self._client.zcard(self.prefix + "bytime")))

    def close(self) -> None:
        """Close the connection pool (the server keeps the data)."""
        self._client.close()

    def _run(self, script: Any, args: list[str | bytes]) -> Any:
        return self._call(lambda: script(keys=[], args=args))

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except redis.RedisError as exc:
            raise StoreError(f"prediction store {self.where} failed: {exc}") from exc


def _unpack_rows(packed: bytes) -> list[StoredRow]:
    """The rows of one page of ``_WINDOW_LUA``: (id, created, scores, label or '') each, every
    field a 4-byte big-endian length then its bytes."""
    fields: list[bytes] = []
    at = 0
    while at < len(packed):
        (size,) = _LENGTH.unpack_from(packed, at)
        fields.append(packed[at + 4 : at + 4 + size])
        at += 4 + size
    return [
        (pid.decode(), float(created), scores, int(label) if label else None)
        for pid, created, scores, label in zip(*[iter(fields)] * 4, strict=True)
    ]


def _record(pid: str, fields: list[bytes | None]) -> PredictionRecord | None:
    """The record of one HMGET of ``_FIELDS`` (None when the hash is gone)."""
    m, v, c, k, t, s = fields
    if m is None or v is None or c is None or k is None or t is None:
        return None
    return PredictionRecord(pid, m.decode(), v.decode(), float(c), int(k), float(t), s or None)


def _resolution(pid: str, label: int, reply: list[bytes]) -> Resolution:
    """Decode one script reply: [outcome] or ['accepted', model, version, conf, pred, created,
    scores ('' when not kept)]."""
    outcome = Outcome(reply[0].decode())
    if outcome is not Outcome.ACCEPTED:
        return Resolution(pid, label, outcome)
    model, version, conf, pred, created, scores = reply[1:]
    record = PredictionRecord(
        pid, model.decode(), version.decode(), float(conf), int(pred), float(created), scores or None
    )
    return Resolution(pid, label, outcome, record)


def _redacted(url: str) -> str:
    """The URL without user or password, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
