"""``memae reproduce <table>`` and ``memae reproduce report``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from memae.io import parse_settings
from memae.reproduce.records import load_records
from memae.reproduce.tables import TABLES, RunOptions, get_table, write_results_doc, write_summary


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "reproduce",
        help="run a paper table's grid (resumable) and regenerate results/ and docs/RESULTS.md",
        description="Runs skip when their record exists, so an interrupted grid resumes.",
    )
    parser.add_argument(
        "table",
        help=f"one of: {', '.join(sorted(TABLES))}; 'figures' (MNIST figures); 'report' (only regenerate)",
    )
    parser.add_argument("--results-dir", default="results", help="records and summaries (default: results)")
    parser.add_argument(
        "--doc",
        help="generated document (default: docs/RESULTS.md for the default --results-dir, "
        "else RESULTS.md inside the --results-dir, so a pilot never rewrites the project's)",
    )
    parser.add_argument("--data-dir", help="data root (default: $MEMAE_DATA, else ~/.cache/memae/data)")
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--methods", nargs="+")
    parser.add_argument("--classes", nargs="+", type=int)
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="override detector settings, e.g. lr=3e-4"
    )
    parser.add_argument("--no-progress", action="store_true")


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_settings(value, f"--set {item!r}")
    return out


def _options(args: argparse.Namespace, results: Path) -> RunOptions:
    return RunOptions(
        results_dir=results,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        datasets=args.datasets,
        methods=args.methods,
        classes=args.classes,
        seeds=args.seeds,
        epochs=args.epochs,
        progress=not args.no_progress,
        overrides=_overrides(args.set),
    )


def doc_path(args: argparse.Namespace) -> Path:
    """Where the generated document goes: ``--doc``, else docs/RESULTS.md for the project's
    own results folder and ``<results-dir>/RESULTS.md`` for any other (a pilot's)."""
    if args.doc:
        return Path(args.doc)
    results = Path(args.results_dir)
    return Path("docs/RESULTS.md") if results == Path("results") else results / "RESULTS.md"


def handle(args: argparse.Namespace) -> int:
    results = Path(args.results_dir)
    doc_file = doc_path(args)
    if args.table == "figures":
        from memae.reproduce.figures import make_figures
        from memae.reproduce.table1 import settings

        options = _options(args, results)
        make_figures(options, settings("mnist", options), doc_file.parent / "figures")
    elif args.table != "report":
        get_table(args.table).run(_options(args, results))
    summaries = []
    for spec in TABLES.values():
        if load_records(results, spec.name):  # no empty summaries of tables not run here
            write_summary(results, spec)
            summaries.append(str(results / f"{spec.name}.json"))
    doc = write_results_doc(results, doc_file)
    print(f"wrote {doc}" + (f" and {', '.join(summaries)}" if summaries else " (no recorded runs yet)"))
    return 0
