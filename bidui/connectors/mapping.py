"""Header mapping: which delivered column is which canonical column of the dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from bidui.datasets import DATASETS, Column, Dataset, header_key
from bidui.privacy import quote


class RefusedError(ValueError):
    """The file is refused whole; the message says why, naming the file and column."""


@dataclass(frozen=True)
class Mapping:
    positions: dict[str, int]  # canonical column → position in the file
    extra: tuple[int, ...]  # positions of unknown columns (kept in the raw record, unused)


@cache
def _lookup(code: str) -> dict[str, str]:
    # Keyed by code: a Dataset holds dicts and cannot be hashed itself.
    ds = next(d for d in DATASETS if d.code == code)
    return {header_key(h): col.name for col in ds.columns for h in col.headers}


def header_lookup(ds: Dataset) -> dict[str, str]:
    """header_key of every accepted header form → the canonical column it means."""
    if any(d is ds for d in DATASETS):
        return _lookup(ds.code)
    return {header_key(h): col.name for col in ds.columns for h in col.headers}  # a dataset built by a test


@lru_cache(maxsize=1)
def _all_keys() -> frozenset[str]:
    return frozenset(k for d in DATASETS for k in _lookup(d.code))


def known_header_keys(ds: Dataset | None = None) -> frozenset[str]:
    """Header keys that mean a column of `ds`, or of any dataset when none is given."""
    return _all_keys() if ds is None else frozenset(header_lookup(ds))


def columns_found(ds: Dataset, header: Sequence[str]) -> set[str]:
    lookup = header_lookup(ds)
    return {lookup[k] for k in map(header_key, header) if k in lookup}


def missing_required(ds: Dataset, header: Sequence[str]) -> list[Column]:
    """The dataset's required columns that no cell of `header` names."""
    found = columns_found(ds, header)
    return [c for c in ds.columns if c.required and c.name not in found]


def describe_columns(columns: Sequence[Column]) -> str:
    return "; ".join(f"{c.name} ({' / '.join(c.headers[:-1])})" for c in columns)


def map_headers(ds: Dataset, header: list[str], filename: str, header_row: int = 1) -> Mapping:
    """Map the header (on `header_row` of the file, 1-based: the reader may have found it below a
    title) to the dataset's columns, or refuse naming the cause."""
    lookup = header_lookup(ds)
    positions: dict[str, int] = {}
    seen: dict[str, int] = {}
    extra = []
    for i, h in enumerate(header):
        key = header_key(h)
        if not key:
            extra.append(i)
            continue
        if key in seen:
            # A header the spec does not know may be a data row taken for the header: masked.
            shown = repr(h) if key in lookup else quote(h)
            raise RefusedError(f"{filename}: duplicate header {shown} in columns {seen[key] + 1} and {i + 1}")
        seen[key] = i
        name = lookup.get(key)
        if name is None:
            extra.append(i)
        elif name in positions:
            raise RefusedError(f"{filename}: columns {positions[name] + 1} ({header[positions[name]]!r}) and {i + 1} "
                               f"({h!r}) both mean {name}")
        else:
            positions[name] = i
    missing = [c for c in ds.columns if c.required and c.name not in positions]
    if missing:
        names = describe_columns(missing)
        # With not one header known, the likelier cause is that row is not the header at all.
        hint = "" if positions else (f" (none of the {sum(1 for h in header if header_key(h))} headers on row "
                                     f"{header_row} is a {ds.code} header: is that row the header?)")
        raise RefusedError(f"{filename}: missing required column(s) for {ds.code}: {names}{hint}")
    return Mapping(positions, tuple(extra))
