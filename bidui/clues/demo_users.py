"""Demo users, one per role, scoped to the busiest township of the ledger (for `make demo`).

    python -m bidui.clues.demo_users HOME

Idempotent: users that exist are left as they are. The credentials are printed: demo only."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import func, select

from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, User
from bidui.clues.users import add_user
from bidui.home import Home

PASSWORD_WORDS = {"township": "xiangzhen", "county": "xianji", "prefecture": "shiji", "admin": "zhuanban"}


def create(home: Home) -> list[tuple[str, str, str, str]]:
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.write() as s:
            township = s.scalar(select(Clue.township_code).group_by(Clue.township_code)
                                .order_by(func.count().desc(), Clue.township_code).limit(1))
            if township is None:
                raise SystemExit("the ledger has no clues yet: publish a night first")
            # A person's name and position, as they sign (谁核实谁签字): never the role's name.
            wanted = [("township", "王芳", "township", township, "扶贫专干"),
                      ("county", "李强", "county", township[:6] + "000000", "县乡村振兴局审核员"),
                      ("prefecture", "张伟", "prefecture", township[:4] + "00000000", "市专班督导"),
                      ("admin", "陈静", "admin", township[:4] + "00000000", "数据专班管理员")]
            out = []
            for username, real_name, role, scope_code, position in wanted:
                # Not the user name (the password policy refuses a password that contains it).
                password = f"demo-2026-{PASSWORD_WORDS[username]}"
                if s.scalar(select(User).where(User.username == username)) is None:
                    add_user(s, username, real_name, role, scope_code, password, position, real_name=real_name)
                out.append((username, password, role, scope_code))
        return out
    finally:
        ledger.close()


def main() -> None:
    home = Home.resolve(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print("demo users (login / password / role / scope):")
    for row in create(home):
        print("  " + " / ".join(row))


if __name__ == "__main__":
    main()
