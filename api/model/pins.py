"""Requirement lines and version specifiers, read with the standard library only (no `packaging`).

Used where no third-party library may be assumed yet: planning a bundle's environment runs before
that environment exists.
"""

from __future__ import annotations

import re
from pathlib import Path

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._\-]*)\s*(\[[^\]]*\])?\s*([^;#]*)")
_SPEC = re.compile(r"(===|==|!=|~=|<=|>=|<|>)\s*([0-9][0-9A-Za-z.*+!-]*)")
_ALIASES = {"xgboost-cpu": "xgboost", "sklearn": "scikit-learn"}


def canonical(name: str) -> str:
    """PEP 503 name, with our aliases (xgboost-cpu provides xgboost)."""
    normal = re.sub(r"[-_.]+", "-", name).lower()
    return _ALIASES.get(normal, normal)


def release(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text.split("+")[0])[:3]) or (0,)


def allows(spec: str, candidate: str) -> bool:
    """Whether a specifier string such as "<2", "==1.26.*", ">=1.23,<2" admits a plain release version."""
    have = release(candidate)
    for op, wanted in _SPEC.findall(spec):
        if wanted.endswith(".*"):
            prefix = release(wanted[:-2])
            same = have[: len(prefix)] == prefix
            if (op == "==" and not same) or (op == "!=" and same):
                return False
            continue
        want = release(wanted)
        width = max(len(have), len(want))
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        ok = {
            "==": a == b, "===": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
            "~=": a >= b and a[: max(len(want) - 1, 1)] == b[: max(len(want) - 1, 1)],
        }[op]
        if not ok:
            return False
    return True


def read_requirements(path: Path) -> list[str]:
    """Requirement lines of a file (comments and blank lines dropped, `-r` includes followed)."""
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            lines.extend(read_requirements(path.parent / line.split(maxsplit=1)[1]))
        else:
            lines.append(line)
    return lines


def named(lines: list[str]) -> dict[str, tuple[str, str]]:
    """canonical name → (line, specifier) for the requirement lines that name a package."""
    named: dict[str, tuple[str, str]] = {}
    for line in lines:
        match = _REQUIREMENT.match(line)
        if match and not line.startswith("-"):
            named[canonical(match[1])] = (line, match[3].strip())
    return named


def exact(spec: str) -> str | None:
    match = re.fullmatch(r"===?\s*([0-9][0-9A-Za-z.+!-]*)", spec.strip())
    return match[1] if match else None


def normal_line(line: str) -> str:
    """`Scikit_Learn == 1.1.3` → `scikit-learn==1.1.3`, so equal pins hash equally."""
    match = _REQUIREMENT.match(line)
    if match is None or line.startswith("-"):
        return line
    name = re.sub(r"[-_.]+", "-", match[1]).lower()
    return f"{name}{match[2] or ''}{match[3].replace(' ', '')}"
