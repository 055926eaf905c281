"""Print pip constraints pinning every dependency to the lowest version pyproject.toml declares.

CI installs the project with these constraints in a second virtual environment, so a
lower bound that no longer works fails CI instead of a user's first install. Only
``name>=X`` bounds are pinned; the tools in ``LINT_ONLY`` are not needed to run the tests.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LINT_ONLY = {"mypy", "ruff"}
EXTRAS = ("test",)


def main() -> int:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project["optional-dependencies"][extra]
    seen: dict[str, str] = {}
    for req in reqs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", req)
        if m is None:
            print(f"lowest.py: cannot read a lower bound from {req!r}", file=sys.stderr)
            return 2
        name = m.group(1).lower()
        if name not in LINT_ONLY:
            seen[name] = m.group(3)
    for name, version in sorted(seen.items()):
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
