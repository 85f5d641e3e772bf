"""Print mutmut's outcome per mutated file and overall, from mutants/**/*.py.meta (after `mutmut run`).

Score = killed / (killed + survived + untested): a mutant no test executes counts as surviving,
since nothing would notice it. Timeouts count as killed (the mutant hangs the tests). Mutants not
run yet (a run stopped early: a sample) are listed apart and left out of the score.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 24, -24, 36, 152, 255, 37}  # failed tests, timeouts, type-check catches
SURVIVED = {0}
UNTESTED = {5, 33}


def main() -> int:
    metas = sorted(Path("mutants").rglob("*.py.meta"))
    if not metas:
        sys.stderr.write("no mutmut results under mutants/: run `make mutation` first\n")
        return 2
    total: Counter[str] = Counter()
    for meta in metas:
        codes = json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {}).values()
        counts = Counter(
            "killed" if c in KILLED else "survived" if c in SURVIVED else "untested" if c in UNTESTED
            else "unchecked" if c is None else "other"
            for c in codes
        )
        total.update(counts)
        _line(str(meta.relative_to("mutants"))[: -len(".meta")], counts)
    _line("TOTAL", total)
    return 0


def _line(name: str, counts: Counter[str]) -> None:
    judged = counts["killed"] + counts["survived"] + counts["untested"]
    score = f"{100 * counts['killed'] / judged:5.1f} %" if judged else "    – "
    sys.stdout.write(
        f"{name:32} {score}  killed {counts['killed']:4}  survived {counts['survived']:4}  "
        f"untested {counts['untested']:4}  not run {counts['unchecked']:4}  other {counts['other']:3}\n"
    )


if __name__ == "__main__":
    sys.exit(main())
