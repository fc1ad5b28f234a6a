"""What a rule hit's evidence says, apart from where it was delivered: the fingerprint a clue keeps
of its evidence (`evidence_hash`), so that a record read again from another file, row or night is
the same evidence. Apart from the ledger, so that the rules step (a batch process without the
ledger) computes it once per record and carries it with the hits it carries."""

from __future__ import annotations

import hashlib
import json

# Keys of an evidence record that describe the delivery, not the fact: a new file name, row
# number or link score on another night is the same evidence.
VOLATILE = {"snapshot_date", "load_id", "source_file", "source_row", "ident", "person_key", "link_method", "link_score",
            "link_explanation", "raw_json", "extra_json", "row_id"}  # and every `<column>_raw`: the value as typed, not the fact


def is_delivery_detail(key: str) -> bool:
    return key in VOLATILE or key.endswith("_raw")


def evidence_hash(record: str | None) -> str:
    """A fingerprint of what the evidence says (volatile delivery details left out). Stored in the
    ledger for every clue and its evidence versions: it must not change between versions."""
    try:
        value = json.loads(record) if record else None
    except json.JSONDecodeError:
        value = record
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if not is_delivery_detail(k)}
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()
