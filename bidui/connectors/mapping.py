"""Header mapping: which delivered column is which canonical column of the dataset."""

from __future__ import annotations

from dataclasses import dataclass

from bidui.datasets import Dataset, header_key


class RefusedError(ValueError):
    """The file is refused whole; the message says why, naming the file and column."""


@dataclass(frozen=True)
class Mapping:
    positions: dict[str, int]  # canonical column → position in the file
    extra: tuple[int, ...]  # positions of unknown columns (kept in the raw record, unused)


def map_headers(ds: Dataset, header: list[str], filename: str) -> Mapping:
    lookup = {header_key(h): col.name for col in ds.columns for h in col.headers}
    positions: dict[str, int] = {}
    seen: dict[str, int] = {}
    extra = []
    for i, h in enumerate(header):
        key = header_key(h)
        if not key:
            extra.append(i)
            continue
        if key in seen:
            raise RefusedError(f"{filename}: duplicate header {h!r} in columns {seen[key] + 1} and {i + 1}")
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
        names = "; ".join(f"{c.name} ({' / '.join(c.headers[:-1])})" for c in missing)
        raise RefusedError(f"{filename}: missing required column(s) for {ds.code}: {names}")
    return Mapping(positions, tuple(extra))
