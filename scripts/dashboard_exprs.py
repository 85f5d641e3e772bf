"""Extract every PromQL expression of a Grafana dashboard as a Prometheus rules file.

The rules file records each expression (``record: dashboard:panel_<id>_<refId>``) so that
``promtool check rules`` parses them all; Grafana's own variables are replaced by values
PromQL accepts first. Standard library only: the output is JSON, which YAML parsers read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# Grafana interval variables stand where PromQL wants a duration.
_DURATIONS = re.compile(r"\$__(rate_interval|interval_ms|interval|range_ms|range_s|range)\b")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def _panels(panels: list[Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def _variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """A PromQL-safe value per dashboard variable: a single current value, else ``.*``."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        current = (variable.get("current") or {}).get("value")
        single = current if isinstance(current, str) and not current.startswith("$") else None
        values[variable["name"]] = single if single is not None else ".*"
    return values


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana variables by values PromQL parses."""
    expr = _DURATIONS.sub(lambda m: "300" if m.group(1).endswith(("_s", "_ms")) else "5m", expr)
    return _VARIABLE.sub(lambda m: variables.get(next(g for g in m.groups() if g), ".*"), expr)


def expressions(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(rule name, expression) for every panel target and annotation query."""
    variables = _variables(dashboard)
    found: list[tuple[str, str]] = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            name = f"dashboard:panel_{panel.get('id')}_{target.get('refId', 'A')}"
            if not isinstance(expr, str) or not expr.strip():
                raise ValueError(f"{name} ({panel.get('title')!r}) has no PromQL expression")
            found.append((name, substitute(expr, variables)))
    for i, annotation in enumerate(dashboard.get("annotations", {}).get("list", [])):
        if isinstance(annotation.get("expr"), str):
            found.append((f"dashboard:annotation_{i}", substitute(annotation["expr"], variables)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dashboard", type=Path, nargs="+", help="Grafana dashboard JSON files")
    parser.add_argument("-o", "--output", type=Path, required=True, help="rules file to write")
    args = parser.parse_args(argv)
    rules: list[dict[str, str]] = []
    for path in args.dashboard:
        rules += [{"record": name, "expr": expr} for name, expr in expressions(json.loads(path.read_text()))]
    if not rules:
        sys.stderr.write("no PromQL expressions found\n")
        return 1
    args.output.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}, indent=2))
    sys.stderr.write(f"{len(rules)} expressions from {len(args.dashboard)} dashboard(s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
