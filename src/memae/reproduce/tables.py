"""The paper's tables: their runners, the paper's numbers and the generated documents.

Each table registers a :class:`TableSpec`; ``memae reproduce <table>`` runs its grid and
then regenerates ``results/<table>.json`` and ``docs/RESULTS.md`` from every record.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memae.checkpoint import atomic_write
from memae.reproduce.paired import agreement, p_text, paired_markdown, paired_test
from memae.reproduce.records import RunKey, changed_settings, load_records, per_class, read_record, summarise


@dataclass(frozen=True)
class RunOptions:
    """What a user picks on the command line; ``None`` means the table's default."""

    results_dir: Path
    data_dir: Path | None = None
    datasets: Sequence[str] | None = None
    methods: Sequence[str] | None = None
    classes: Sequence[int] | None = None
    seeds: Sequence[int] | None = None
    epochs: int | None = None
    progress: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    """A named way to read a table's records: the metrics each record shows under it
    (``None`` where a record cannot give them). A table with readings prints its rows
    under the first and keeps a row set of its own for each of the others."""

    name: str
    description: str
    metrics: Callable[[dict[str, Any]], dict[str, float] | None]


@dataclass(frozen=True)
class RowSet:
    """Runs of a table under another setting, kept beside the table's own rows: the records
    of some pilot folders (``results/sweeps/<folder>``), shown with rows and a paired test
    of their own and read as the table's rows are."""

    name: str
    description: str
    folders: tuple[str, ...]

    def records(self, results_dir: Path, spec: TableSpec) -> list[dict[str, Any]]:
        root = Path(results_dir) / "sweeps"
        found = [rec for folder in self.folders for rec in load_records(root / folder, spec.name)]
        return read(found, spec.default_reading)

    def source(self) -> str:
        return ", ".join(f"`results/sweeps/{folder}`" for folder in self.folders)


def read(records: list[dict[str, Any]], reading: Reading | None) -> list[dict[str, Any]]:
    """The records with their metrics as ``reading`` gives them (unchanged for None)."""
    if reading is None:
        return records
    out = []
    for rec in records:
        metrics = reading.metrics(rec)
        if metrics is not None:
            out.append({**rec, "metrics": metrics})
    return out


@dataclass(frozen=True)
class TableSpec:
    """One of the paper's tables."""

    name: str
    title: str
    metrics: tuple[str, ...]
    #: {dataset: {method: value}} for one metric, {dataset: {method: {metric: value}}} for several
    paper: dict[str, dict[str, Any]]
    run: Callable[[RunOptions], None]
    notes: str = ""
    #: extra markdown (figures, sweeps) appended to the table's section, built from the results dir
    extra: Callable[[Path], str] | None = None
    #: a recorded config as it compares with a newer one (fields added since at their defaults)
    comparable: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: the part of a run's config that decides a method's result, by method (None: all of it)
    relevant: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    #: named readings of the records; the first is the table's own, () = the records' metrics
    readings: tuple[Reading, ...] = ()
    #: runs under other settings, each printed as a row set of its own
    row_sets: tuple[RowSet, ...] = ()

    @property
    def default_reading(self) -> Reading | None:
        return self.readings[0] if self.readings else None

    @property
    def headline(self) -> str:
        """The metric the paired test and the pilots compare."""
        return "f1" if "f1" in self.metrics else self.metrics[0]


TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    TABLES[spec.name] = spec
    return spec


def get_table(name: str) -> TableSpec:
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; known tables: {', '.join(sorted(TABLES))}")
    return TABLES[name]


def write_summary(results_dir: Path, spec: TableSpec) -> dict[str, Any]:
    """Regenerate ``<results_dir>/<table>.json`` from the table's records under its own
    reading, ``<table>.<reading>.json`` under each of its other readings and
    ``<table>.<row set>.json`` for each row set with records."""
    records = load_records(results_dir, spec.name)
    summary = summarise(read(records, spec.default_reading))
    for reading in spec.readings[1:]:
        _write_json(results_dir / f"{spec.name}.{reading.name}.json", summarise(read(records, reading)))
    for row_set in spec.row_sets:
        if kept := row_set.records(results_dir, spec):
            _write_json(results_dir / f"{spec.name}.{row_set.name}.json", summarise(kept))
    _write_json(results_dir / f"{spec.name}.json", summary)
    return summary


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True)
    atomic_write(path, lambda p: Path(p).write_text(text + "\n"))


def _fmt(stats: dict[str, Any] | None) -> str:
    """``mean ± std (n)`` over seeds; a single seed (or run) shows its value alone, since
    its spread is unknown, not zero."""
    if not stats:
        return "–"
    classes = stats.get("n_classes")
    seeds = stats["n_runs"] // classes if classes else stats["n_runs"]
    unit = "seed" if classes else "run"
    count = f"{seeds} {unit}{'s' if seeds != 1 else ''}" + (f" × {classes} classes" if classes else "")
    if seeds == 1:
        return f"{stats['mean']:.4f} ({count})"
    return f"{stats['mean']:.4f} ± {stats['std']:.4f} ({count})"


def _paper(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}"


def render_table(results_dir: Path, spec: TableSpec) -> str:
    """The markdown section of one table: ours beside the paper's (under the table's own
    reading, then a row set per other reading), MemAE against AE paired, per-class values."""
    all_records = load_records(results_dir, spec.name)
    records = read(all_records, spec.default_reading)
    lines = [f"## {spec.title}", ""]
    if spec.notes:
        lines += [spec.notes, ""]
    extra = spec.extra(results_dir) if spec.extra is not None else ""
    if not all_records:
        return "\n".join([*lines, "No runs recorded yet.", "", extra])
    if spec.default_reading is not None:
        lines += [f"Rows under `{spec.default_reading.name}`: {spec.default_reading.description}", ""]
    own = summarise(records)
    lines += _rows(spec, own)
    lines += paired_section(spec, records)
    for reading in spec.readings[1:]:
        other = read(all_records, reading)
        lines += [f"Rows under `{reading.name}`: {reading.description}", ""]
        lines += [*_rows(spec, summarise(other)), *paired_section(spec, other)]
    row_sets = [(row_set, row_set.records(results_dir, spec)) for row_set in spec.row_sets]
    for row_set, kept in row_sets:
        if kept:
            lines += [f"Row set `{row_set.name}` (records in {row_set.source()}): {row_set.description}", ""]
            kept_summary = summarise(kept)
            lines += _rows(spec, kept_summary, only_ours=True)
            lines += _closeness(spec, own, kept_summary, summarise(_same_runs(records, kept)))
            lines += _against_table(spec, records, kept, kept_summary)
            lines += paired_section(spec, kept)
    lines += _per_class_lines(spec, records)
    for row_set, kept in row_sets:
        lines += _per_class_lines(spec, kept, f", row set `{row_set.name}`")
    seconds = sum(r.get("wall_seconds", 0.0) for r in all_records)
    commits = sorted({_short(str(r.get("commit"))) for r in all_records})
    lines += ["", *wall_time_table(all_records)]
    lines += [
        "",
        f"{len(all_records)} runs, {seconds / 3600:.2f} h of wall time in total, about "
        f"{seconds / 7200:.1f} h on 2 cores (records under `results/runs/{spec.name}/`, "
        f"commits {', '.join(commits)}).",
        "",
    ]
    return "\n".join([*lines, extra])


def _per_class_lines(spec: TableSpec, records: list[dict[str, Any]], which: str = "") -> list[str]:
    """Markdown lines: each dataset's per-class values (one-class tables), mean over seeds."""
    lines: list[str] = []
    for dataset, methods in sorted(per_class(records, spec.metrics[0]).items()):
        all_classes = sorted({c for per in methods.values() for c in per})
        lines += ["", f"Per-class {spec.metrics[0].upper()} on {dataset}{which} (mean over seeds):", ""]
        lines += ["| method | " + " | ".join(map(str, all_classes)) + " |"]
        lines += ["|---|" + "---|" * len(all_classes)]
        for method in method_order(spec, {dataset: methods}, dataset, only_ours=bool(which)):
            per = methods.get(method, {})
            lines.append(
                f"| {method} | "
                + " | ".join(f"{per[c]:.4f}" if c in per else "–" for c in all_classes)
                + " |"
            )
    return lines


def _rows(spec: TableSpec, summary: dict[str, Any], only_ours: bool = False) -> list[str]:
    """Markdown lines of ours beside the paper's, one row per method (with ``only_ours``,
    only the datasets and methods that have runs)."""
    datasets = sorted(set(summary) if only_ours else set(summary) | set(spec.paper))
    lines: list[str] = []
    if len(spec.metrics) == 1:
        lines += ["| method | " + " | ".join(f"{d} (ours) | {d} (paper)" for d in datasets) + " |"]
        lines += ["|---|" + "---|---|" * len(datasets)]
        for method in method_order(spec, summary, only_ours=only_ours):
            cells = [
                f"{_fmt(summary.get(d, {}).get(method))} | {_paper(spec.paper.get(d, {}).get(method))}"
                for d in datasets
            ]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        return [*lines, ""]
    for d in datasets:
        lines += [f"**{d}**", ""]
        lines += ["| method | " + " | ".join(f"{m} (ours) | {m} (paper)" for m in spec.metrics) + " |"]
        lines += ["|---|" + "---|---|" * len(spec.metrics)]
        for method in method_order(spec, summary, d, only_ours=only_ours):
            ours = summary.get(d, {}).get(method, {})
            paper = spec.paper.get(d, {}).get(method, {})
            cells = [f"{_fmt(ours.get(m))} | {_paper(paper.get(m))}" for m in spec.metrics]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _headline_mean(spec: TableSpec, summary: dict[str, Any], dataset: str, method: str) -> float | None:
    entry = summary.get(dataset, {}).get(method)
    if entry and len(spec.metrics) > 1:
        entry = entry.get(spec.headline)
    return entry["mean"] if entry else None


def _run_id(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["dataset"], record["method"], record.get("normal_class"), record["seed"])


def _same_runs(records: list[dict[str, Any]], kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's records of the runs (dataset, method, class, seed) a row set also has, on
    each dataset where the row set lacks some of the table's runs of its methods."""
    wanted = {_run_id(r) for r in kept}
    methods = {(r["dataset"], r["method"]) for r in kept}
    lacking = {
        r["dataset"] for r in records if (r["dataset"], r["method"]) in methods and _run_id(r) not in wanted
    }
    return [r for r in records if _run_id(r) in wanted and r["dataset"] in lacking]


def _closeness(
    spec: TableSpec, own: dict[str, Any], kept: dict[str, Any], same: dict[str, Any] | None = None
) -> list[str]:
    """Markdown lines: how far a row set and the table's own rows sit from the paper, as the
    mean absolute difference of the headline metric over the methods all three have; where
    the row set has fewer runs than the table, also the table's rows on the row set's runs
    (``same``), the comparison that holds the classes and seeds fixed."""
    lines = []
    for dataset in sorted(kept):
        paper = _paper_values(spec, dataset)
        methods, own_gaps, kept_gaps, same_gaps, moved = [], [], [], [], False
        for method in method_order(spec, kept, dataset, only_ours=True):
            target = paper.get(method)
            own_value = _headline_mean(spec, own, dataset, method)
            kept_value = _headline_mean(spec, kept, dataset, method)
            if target is None or own_value is None or kept_value is None:
                continue
            methods.append(method)
            own_gaps.append(abs(own_value - target))
            kept_gaps.append(abs(kept_value - target))
            same_value = _headline_mean(spec, same or {}, dataset, method)
            if same_value is not None:
                same_gaps.append(abs(same_value - target))
                moved = moved or same_value != own_value
        if methods:
            subset = (
                f" ({statistics.mean(same_gaps):.4f} on this row set's classes and seeds)"
                if len(same_gaps) == len(methods) and moved
                else ""
            )
            lines += [
                f"Distance to the paper on {dataset} (mean |ours − paper| of {spec.headline} over "
                f"{', '.join(methods)}): the table's rows {statistics.mean(own_gaps):.4f}{subset}, "
                f"this row set {statistics.mean(kept_gaps):.4f}.",
                "",
            ]
    return lines


def _against_table(
    spec: TableSpec, records: list[dict[str, Any]], kept: list[dict[str, Any]], summary: dict[str, Any]
) -> list[str]:
    """Markdown lines: each method of a row set (``kept``, summarised as ``summary``) against
    the table's own runs of it, paired by run (dataset, class, seed): what the row set's
    setting changes."""
    rows = []
    pairs = [(d, m) for d in sorted(summary) for m in method_order(spec, summary, d, only_ours=True)]
    for dataset, method in pairs:
        same = (dataset, method)
        ours = [r for r in records if (r["dataset"], r["method"]) == same]
        theirs = [{**r, "method": "row set"} for r in kept if (r["dataset"], r["method"]) == same]
        test = paired_test(ours + theirs, dataset, spec.headline, a="row set", b=method)
        if test is None:
            continue
        rows.append(
            f"| {dataset} | {method} | {test.n_pairs} | {test.mean_b:.4f} | {test.mean_a:.4f} | "
            f"{test.difference:+.4f} [{test.ci_low:+.4f}, {test.ci_high:+.4f}] | "
            f"{p_text(test)} | {test.wins} / {test.losses} |"
        )
    if not rows:
        return []
    return [
        "Against the table's own runs, paired by run (same dataset, method, class and seed): "
        f"the mean change of {spec.headline} (row set − table) with its 95% t interval, the "
        "two-sided Wilcoxon signed-rank p-value, and the pairs in which the row set is higher / "
        "lower.",
        "",
        "| dataset | method | pairs | table | row set | change [95 % interval] | Wilcoxon p "
        "| higher / lower |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _paper_values(spec: TableSpec, dataset: str) -> dict[str, float | None]:
    """The paper's headline value of each method on ``dataset``."""
    out: dict[str, float | None] = {}
    for method, value in spec.paper.get(dataset, {}).items():
        out[method] = value.get(spec.headline) if isinstance(value, dict) else value
    return out


def paired_section(spec: TableSpec, records: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: MemAE against AE paired over the runs both have, per dataset."""
    datasets = sorted({r["dataset"] for r in records})
    tests = [(paired_test(records, d, spec.headline), _paper_values(spec, d)) for d in datasets]
    return paired_markdown([(t, paper) for t, paper in tests if t is not None])


def wall_time_table(records: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: the recorded time of each dataset's and method's runs (fit + score,
    one thread each), the median run and the total, in core-hours."""
    grouped: dict[tuple[str, str], list[float]] = defaultdict(list)
    for rec in records:
        if "wall_seconds" in rec:
            grouped[(rec["dataset"], rec["method"])].append(float(rec["wall_seconds"]))
    if not grouped:
        return []
    lines = [
        "Time per run as recorded (one thread per run; grids ran side by side on the 2 cores, "
        "so these include some contention):",
        "",
        "| dataset | method | runs | median run (s) | total (core-hours) |",
        "|---|---|---|---|---|",
    ]
    for (dataset, method), times in sorted(grouped.items()):
        median = statistics.median(times)
        lines.append(f"| {dataset} | {method} | {len(times)} | {median:.0f} | {sum(times) / 3600:.2f} |")
    return lines


def _short(commit: str) -> str:
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def method_order(
    spec: TableSpec, summary: dict[str, Any], dataset: str | None = None, only_ours: bool = False
) -> list[str]:
    """The paper's methods in its order, then ours it does not have; with ``only_ours``,
    only the methods with runs."""
    paper_order = [m for d in spec.paper.values() for m in d]
    ours = [m for d, ms in summary.items() if dataset in (None, d) for m in ms]
    seen: dict[str, None] = {}
    for m in [*paper_order, *sorted(ours)]:
        seen.setdefault(m, None)
    return [m for m in seen if m in ours] if only_ours else list(seen)


def memory_summary(results_dir: Path) -> str:
    """A section: MemAE against AE in every table (its own reading), beside the paper."""
    rows = []
    for spec in TABLES.values():
        own = read(load_records(results_dir, spec.name), spec.default_reading)
        sets = [(spec.name, own)]
        sets += [(f"{spec.name}, row set `{r.name}`", r.records(results_dir, spec)) for r in spec.row_sets]
        for label, records in sets:
            rows += _memory_rows(spec, label, records)
    if not rows:
        return ""
    return "\n".join(
        [
            "## Does the memory help?",
            "",
            "MemAE against AE in every table, paired by run (same dataset, class and seed) and read "
            "as each table's rows are: MemAE's mean (ours / the paper's), the mean difference "
            "MemAE − AE with its 95 % t interval, the two-sided Wilcoxon signed-rank p-value, the "
            "paper's difference, and whether our pairs agree with the paper's ordering at p < 0.05 "
            "(*not confirmed*: the difference is not distinguishable from zero on these runs). "
            "Each table's section below repeats its test with the pairs each way; a row set is "
            "a table's runs under another setting, kept beside its own rows.",
            "",
            "| table | dataset | metric | pairs | MemAE (ours / paper) | MemAE − AE [95 % interval] | "
            "Wilcoxon p | paper MemAE − AE | our pairs vs the paper |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def _memory_rows(spec: TableSpec, label: str, records: list[dict[str, Any]]) -> list[str]:
    """Rows of the memory summary: MemAE against AE on each dataset of ``records``."""
    rows = []
    for dataset in sorted({r["dataset"] for r in records}):
        test = paired_test(records, dataset, spec.headline)
        if test is None:
            continue
        paper = _paper_values(spec, dataset)
        memae, ae = paper.get("MemAE"), paper.get("AE")
        paper_diff = None if memae is None or ae is None else memae - ae
        state = agreement(test, paper_diff)
        rows.append(
            f"| {label} | {dataset} | {spec.headline} | {test.n_pairs} | "
            f"{test.mean_a:.4f} / {'–' if memae is None else f'{memae:.4f}'} | "
            f"{test.difference:+.4f} [{test.ci_low:+.4f}, {test.ci_high:+.4f}] | "
            f"{p_text(test)} | "
            f"{'–' if paper_diff is None else f'{paper_diff:+.4f}'} | {state} |"
        )
    return rows


def write_results_doc(results_dir: Path, doc: Path) -> Path:
    """Regenerate ``docs/RESULTS.md`` from the records of every registered table."""
    sections = [
        "# Results",
        "",
        "Generated by `memae reproduce report` from the run records under `results/runs/`; "
        "every number below comes from those records (each holds its config, seed, commit and "
        "machine). Values are mean ± standard deviation over seeds (for one-class tables, "
        "of the mean over classes); brackets give the seeds (and classes) behind them.",
        "",
    ]
    sections.append(memory_summary(results_dir))
    for spec in TABLES.values():
        sections.append(render_table(results_dir, spec))
    sections.append(pilots_markdown(results_dir))
    text = "\n".join(sections)
    return atomic_write(doc, lambda p: Path(p).write_text(text))


#: Config keys that name or describe a run rather than decide it.
_DESCRIPTIVE = {"name", "description"}


def _config_changes(spec: TableSpec, grid: dict[str, Any], pilot: dict[str, Any]) -> list[str]:
    def comparable(config: dict[str, Any]) -> dict[str, Any]:
        config = spec.comparable(config) if spec.comparable is not None else config
        return {k: v for k, v in config.items() if k not in _DESCRIPTIVE}

    # an absent key is the detector's default
    return [
        c.replace(" None -> ", " (default) -> ").replace(" -> None", " -> (default)")
        for c in changed_settings(comparable(grid), comparable(pilot))
    ]


def pilots_markdown(results_dir: Path) -> str:
    """A section on the pilot runs under ``<results_dir>/sweeps/<folder>/``: each folder's
    runs per table and method, their mean beside the mean of the tables' own records of the
    same runs (dataset, class, seed), and the settings in which the two differ."""
    root = Path(results_dir) / "sweeps"
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    rows = []
    for folder in folders:
        for spec in TABLES.values():
            grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            for rec in read(load_records(folder, spec.name), spec.default_reading):
                grouped[(rec["dataset"], rec["method"])].append(rec)
            for (dataset, method), runs in sorted(grouped.items()):
                rows.append(_pilot_row(results_dir, folder.name, spec, dataset, method, runs))
    if not rows:
        return ""
    lines = [
        "## Pilot runs",
        "",
        "Runs made while the tables' settings were chosen, each folder under `results/sweeps/` "
        "the `--results-dir` of one command (`results/sweeps/README.md` lists them). *Grid* is "
        "the mean of the tables' own records of the same runs (dataset, class, seed), where "
        f"they exist; both are read as the table's rows are{_readings_note()}; "
        "the last column is where the settings of the two differ (grid -> pilot; "
        "*(default)*: a setting the config leaves to the detector's default). "
        "*s/run* is the pilot runs' median wall time (one thread each; what else ran on the "
        "machine at the time varies from folder to folder, so compare times within folders run "
        "side by side). Mostly one seed each: these chose settings, they are not results.",
        "",
        "| folder | table | dataset | method | runs | metric | pilot | s/run | grid "
        "| settings (grid -> pilot) |",
        "|---|---|---|---|---|---|---|---:|---|---|",
        *rows,
        "",
    ]
    return "\n".join(lines)


def _readings_note() -> str:
    named = [f"{s.name} under `{s.default_reading.name}`" for s in TABLES.values() if s.default_reading]
    return f" ({', '.join(named)})" if named else ""


def _pilot_row(
    results_dir: Path, folder: str, spec: TableSpec, dataset: str, method: str, runs: list[dict[str, Any]]
) -> str:
    metric = spec.headline
    pilot = [r["metrics"][metric] for r in runs]
    grid, changes = [], []
    for rec in runs:
        key = RunKey(spec.name, dataset, method, rec["seed"], rec.get("normal_class"))
        path = key.path(results_dir)
        own_records = read([read_record(path)], spec.default_reading) if path.is_file() else []
        for own in own_records:
            grid.append(own["metrics"][metric])
            configs = own.get("config", {}), rec.get("config", {})
            if spec.relevant is not None:  # only the settings the method reads can differ for it
                configs = tuple(spec.relevant(method, c) for c in configs)
            diff = _config_changes(spec, *configs)
            changes += [c for c in diff if c not in changes]
    classes = sorted({r["normal_class"] for r in runs if r.get("normal_class") is not None})
    seeds = sorted({r["seed"] for r in runs})
    which = f"seeds {', '.join(map(str, seeds))}"
    if classes:
        which = f"classes {', '.join(map(str, classes))}; {which}"
    grid_cell = f"{statistics.mean(grid):.4f}" if len(grid) == len(runs) else "–"
    seconds = [r["wall_seconds"] for r in runs if isinstance(r.get("wall_seconds"), int | float)]
    time_cell = f"{statistics.median(seconds):.0f}" if seconds else "–"
    settings = "; ".join(f"`{c}`" for c in changes) if changes else ("–" if grid_cell == "–" else "same")
    return (
        f"| `{folder}` | {spec.name} | {dataset} | {method} | {len(runs)} ({which}) | {metric} | "
        f"{statistics.mean(pilot):.4f} | {time_cell} | {grid_cell} | {settings} |"
    )
