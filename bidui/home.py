"""Where bidui keeps its state: the home folder (`--home`, env BIDUI_HOME, default ./data)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("data")


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, given: Path | None = None) -> Home:
        root = given or Path(os.environ.get("BIDUI_HOME") or DEFAULT_HOME)
        return cls(Path(root))

    def exists(self) -> bool:
        """A folder bidui has worked in: it holds the ledger, the warehouse or the config. A bare
        folder (the repository's data/ with only its README) is not a home: reading it would
        create an empty ledger and report zeros. A folder whose run lock names its holder is one a
        run is working in (perhaps its first): a command that reads it waits for the lock, not
        refuses. An empty run.lock is one a command let go of (bidui.runlock empties it when done),
        perhaps a command that failed on its input before it made anything: not a home."""
        from bidui.runlock import holder, lock_path

        if not self.root.is_dir():
            return False
        return any(p.exists() for p in (self.ledger, self.warehouse, self.config)) or \
            holder(lock_path(self.root))[0] is not None

    def ensure(self) -> Home:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def attachments(self) -> Path:
        """Photos and PDFs of verifications, content-addressed (attachments/ab/abcdef…)."""
        return self.root / "attachments"

    @property
    def config(self) -> Path:
        return self.root / "bidui.toml"
