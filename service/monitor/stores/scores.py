"""The served probability vector of a prediction, as stored beside it (PredictionRecord.scores).

One blob per prediction, little-endian 32-bit words; a header of two uint32, the number of
classes C and the number k of probabilities kept, then:

- ``k == C`` (C <= top_k): float32 ``p[0..C-1]``, the served probabilities bit for bit
  (8 + 4C bytes: 48 for 10 classes);
- ``k < C`` (C > top_k): uint32 ``idx[k]`` (the k most probable classes, in no particular order),
  float32 ``p[idx]``, float32 ``rest`` = the mass of the classes not kept (the row's sum minus the
  kept ones', in float64) (12 + 8k bytes: 268 for k = 32, whatever C).

Why the limit: a full vector costs 4C bytes per stored prediction, times ``store_capacity``
(10 million by default): 40 GB at ImageNet's 1000 classes. A recalibration map is fitted on the
served log-probabilities; for a temperature the label's own log-probability and the vector's
log-sum-exp matter, and both are carried by the top classes when C is large (the label lies in
the top 32 of a useful model almost always, and the classes not kept hold little mass). So above
``top_k`` classes (``CANDOR_STORE_TOP_K``, 32 by default) only the top k and the rest's mass are
kept, and ``decode_log_probs`` spreads the rest evenly over the C - k classes not kept: the kept
classes are exact, each row keeps its mass, and only the shape of the tail is lost (a label
outside the top k reads log(rest / (C - k))).

Probabilities rather than log-probabilities are stored: the served float32 values round-trip
exactly and the request path takes no logarithm. The log is taken on read, in float64, after
flooring at ``PROB_FLOOR`` (the smallest normal float32, log = -87.34), so a probability that
underflowed to 0 reads as a large finite negative number instead of -inf; a map composed onto
the served graph must apply the same floor before its log.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from service.monitor.errors import MonitorInputError, StoreError

DEFAULT_TOP_K = 32
PROB_FLOOR = float(np.finfo(np.float32).tiny)  # 1.1755e-38
HEADER_WORDS = 2  # uint32 n_classes, uint32 kept
_WORD = np.dtype("<u4")
_FLOAT = np.dtype("<f4")


def encode_scores(probs: ArrayLike, top_k: int = DEFAULT_TOP_K) -> list[bytes]:
    """One blob per row of the (n, C) served probabilities: full when C <= top_k, else the top_k
    classes and the rest's mass (module docstring). Vectorised: one ``tobytes`` for the batch."""
    p = np.ascontiguousarray(probs, dtype=_FLOAT)
    if p.ndim != 2 or top_k < 1:
        raise MonitorInputError(f"scores need (n, C) probabilities and top_k >= 1, got shape {p.shape}, {top_k=}")
    n, c = p.shape
    if c <= top_k:  # the header, then the row's bytes as served (no table to build)
        header, data, width = struct.pack("<II", c, c), p.tobytes(), c * _FLOAT.itemsize
        return [header + data[start : start + width] for start in range(0, n * width, width)]
    table = _top_k_table(p, top_k)
    table[:, 0] = c
    data, width = table.tobytes(), table.shape[1] * _WORD.itemsize
    return [data[start : start + width] for start in range(0, n * width, width)]


def _top_k_table(p: NDArray[np.float32], k: int) -> NDArray[np.uint32]:
    """Header + indices of the k largest, their probabilities, and the rest's mass: the row's
    float64 sum minus the kept ones' (cheaper than gathering the C - k others; absolute error
    about 1e-16, clipped at 0)."""
    c = p.shape[1]
    kept = np.argpartition(p, c - k, axis=1)[:, c - k :]  # the k largest, in no order
    kept_p = np.take_along_axis(p, kept, axis=1)
    rest = np.maximum(p.sum(axis=1, dtype=np.float64) - kept_p.sum(axis=1, dtype=np.float64), 0.0)
    table = np.empty((p.shape[0], HEADER_WORDS + 2 * k + 1), dtype=_WORD)
    table[:, 1] = k
    table[:, HEADER_WORDS : HEADER_WORDS + k] = kept
    table[:, HEADER_WORDS + k : HEADER_WORDS + 2 * k] = kept_p.view(_WORD)
    table[:, -1] = rest.astype(_FLOAT).view(_WORD)
    return table


def decode_probs(blobs: Sequence[bytes]) -> NDArray[np.float64]:
    """The (n, C) probabilities of the blobs (all of one model: the same C; StoreError if not,
    or if a blob is malformed); top-k rows spread the rest evenly over the classes not kept."""
    if not blobs:
        return np.zeros((0, 0))
    if len(set(map(len, blobs))) == 1:  # the usual case: one layout, one frombuffer
        table = _table(blobs, len(blobs[0]))
        if (table[:, :HEADER_WORDS] == table[0, :HEADER_WORDS]).all():
            return _decode_table(table, *_header(blobs[0][: HEADER_WORDS * _WORD.itemsize]))
    groups: dict[bytes, list[int]] = {}
    for row, blob in enumerate(blobs):
        groups.setdefault(blob[: HEADER_WORDS * _WORD.itemsize], []).append(row)
    out: NDArray[np.float64] | None = None
    for header, rows in groups.items():
        c, k = _header(header)
        if out is None:
            out = np.empty((len(blobs), c))
        elif out.shape[1] != c:
            raise StoreError(f"stored scores of one model disagree on the number of classes: {out.shape[1]} and {c}")
        out[rows] = _decode_group([blobs[r] for r in rows], c, k)
    assert out is not None
    return out


def decode_log_probs(blobs: Sequence[bytes]) -> NDArray[np.float64]:
    """log(max(p, PROB_FLOOR)) of ``decode_probs``, in float64."""
    return np.log(np.maximum(decode_probs(blobs), PROB_FLOOR))


def _header(header: bytes) -> tuple[int, int]:
    if len(header) != HEADER_WORDS * _WORD.itemsize:
        raise StoreError(f"stored scores are malformed: a blob of {len(header)} bytes has no header")
    c, k = (int(v) for v in np.frombuffer(header, dtype=_WORD))
    if not 1 <= k <= c:
        raise StoreError(f"stored scores are malformed: header says {k} of {c} classes kept")
    return c, k


def _table(blobs: Sequence[bytes], size: int) -> NDArray[np.uint32]:
    """The blobs, all ``size`` bytes long, as one (n, size / 4) table of words."""
    if size % _WORD.itemsize or size < HEADER_WORDS * _WORD.itemsize:
        raise StoreError(f"stored scores are malformed: a blob of {size} bytes")
    return np.frombuffer(b"".join(blobs), dtype=_WORD).reshape(len(blobs), size // _WORD.itemsize)


def _decode_group(blobs: list[bytes], c: int, k: int) -> NDArray[np.float64]:
    """Rows sharing one header (C, k): one ``frombuffer`` of their concatenation."""
    width = HEADER_WORDS + (c if k == c else 2 * k + 1)
    if any(len(blob) != width * _WORD.itemsize for blob in blobs):
        raise StoreError(f"stored scores are malformed: blobs of {k} of {c} classes must be {width * 4} bytes")
    return _decode_table(_table(blobs, width * _WORD.itemsize), c, k)


def _decode_table(table: NDArray[np.uint32], c: int, k: int) -> NDArray[np.float64]:
    """The probabilities of a table of rows with header (C, k) (StoreError if the width is not
    that header's)."""
    if table.shape[1] != HEADER_WORDS + (c if k == c else 2 * k + 1):
        width = table.shape[1] * _WORD.itemsize
        raise StoreError(f"stored scores are malformed: blobs of {k} of {c} classes cannot be {width} bytes")
    if k == c:
        return table[:, HEADER_WORDS:].view(_FLOAT).astype(np.float64)
    kept_at = table[:, HEADER_WORDS : HEADER_WORDS + k].astype(np.intp)
    if kept_at.size and int(kept_at.max()) >= c:
        raise StoreError(f"stored scores are malformed: a kept class index is not below {c}")
    kept = table[:, HEADER_WORDS + k : HEADER_WORDS + 2 * k].view(_FLOAT).astype(np.float64)
    rest = table[:, -1].view(_FLOAT).astype(np.float64)
    out = np.repeat((rest / (c - k))[:, None], c, axis=1)
    np.put_along_axis(out, kept_at, kept, axis=1)
    return out
