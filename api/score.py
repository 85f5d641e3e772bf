"""`modelo-score` and `python -m api.score`: score a CSV or Parquet file with a bundle, as POST /predict would.

Only the standard library is imported until the arguments are parsed, so `--help` answers at once.
Exit status: 0 every row scored; 3 the job finished but rows were rejected (see OUT.rejects.csv);
2 it could not start (bad arguments, a refused bundle, an unreadable input or a missing column).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_REJECTED = 3
EXIT_CANNOT_START = 2

EPILOG = """\
Output columns: the id column (--id or ID_FIELD), the input columns with --keep-input, then
prediction, probability_<class> per class and model_version; with --explain N, then base_value
and reason_<i>_feature, reason_<i>_value (the cell, as text), reason_<i>_contribution for i = 1..N
(N at most the model's columns; see the README, "Score a file"). Rows that fail the API's validation
go to OUT.rejects.csv (row, field, reason) and the job goes on. A blank CSV cell (empty or only
spaces) is a missing value: accepted where the fitted pipeline imputes the column, rejected where
it does not. MODEL_DIR, MODEL_VERSION, ID_FIELD and the other service settings are read from the
environment as by the service; a flag wins. `make score MODEL_DIR=... IN=... OUT=...` runs this in
the environment the bundle needs.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelo-score",
        description="Score every row of a CSV or Parquet file with a bundle (same checks and code path as the API).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="CSV or Parquet file to score (.parquet/.pq: Parquet; with Spark, any URI)")
    parser.add_argument("output", help="where the scores go (.parquet/.pq: Parquet, else CSV; Spark: a directory)")
    parser.add_argument("--model-dir", help="bundle directory (MODEL_DIR; default models)")
    parser.add_argument("--model-version", help="YYYYMMDD_HHMMSS version to use (MODEL_VERSION; default newest)")
    parser.add_argument("--id", dest="id_field", help="input column echoed as the first output column (ID_FIELD)")
    parser.add_argument(
        "--keep-input", action="store_true", help="carry every input column into the output (default: only the id)"
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=None, help="rows per chunk (default 20000, 500 with --explain; bounds memory)"
    )
    parser.add_argument(
        "--explain",
        type=_reason_count,
        metavar="N",
        help="add base_value and the N strongest reasons per row (reason_<i>_feature/_value/_contribution)",
    )
    parser.add_argument("--input-format", choices=("csv", "parquet"), help="override the input's suffix")
    parser.add_argument("--output-format", choices=("csv", "parquet"), help="override the output's suffix")
    parser.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="local: this process (default); spark: a Spark job (SPARK_MASTER, default local[*])",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr: auto shows it on a terminal only",
    )
    return parser


def _reason_count(text: str) -> int:
    """--explain's N: a whole number >= 1, as /predict?explain= accepts (argparse reports anything else)."""
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return int(digits) if len(digits) <= 9 else 10**9  # more than any model has columns (int() refuses huge text)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    flags = {"model_dir": args.model_dir, "model_version": args.model_version, "id_field": args.id_field}
    return {name: value for name, value in flags.items() if value is not None}


def _cannot_start(reason: str) -> int:
    sys.stderr.write(f"modelo-score: cannot score: {reason}\n")
    return EXIT_CANNOT_START


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.chunk_rows is not None and args.chunk_rows < 1:
        return _cannot_start("--chunk-rows must be at least 1")
    try:
        from pydantic import ValidationError

        from api.config import load_settings
        from api.errors import ServiceError
        from api.scoring.model import load_for_scoring
    except ImportError as exc:
        return _cannot_start(f"this Python environment lacks a library scoring needs ({exc}); use `make score`")
    try:
        settings = load_settings(**_overrides(args))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return _cannot_start(f"invalid setting -- {problems}")
    progress = {"auto": None, "always": True, "never": False}[args.progress]
    try:
        if args.engine == "spark":
            from api.scoring.spark import score_with_spark

            summary = score_with_spark(
                settings, args.input, args.output, keep_input=args.keep_input, explain=args.explain,
                input_format=args.input_format, output_format=args.output_format,
            )
        else:
            from api.scoring.job import score_file

            model = load_for_scoring(settings)
            summary = score_file(
                model, Path(args.input), Path(args.output), chunk_rows=args.chunk_rows, keep_input=args.keep_input,
                explain=args.explain, input_format=args.input_format, output_format=args.output_format,
                progress=progress,
            )
    except ServiceError as exc:
        return _cannot_start(exc.message)
    except ImportError as exc:
        return _cannot_start(f"this Python environment lacks a library scoring needs ({exc}); use `make score`")
    sys.stderr.write(summary.text())
    return EXIT_REJECTED if summary.rejected_rows else 0


if __name__ == "__main__":
    sys.exit(main())
