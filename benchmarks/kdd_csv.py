"""KDDCUP99 records as a user holds them: CSV files with a header and string columns, through
the command line with no manual step.

Writes ``train.csv`` (20,000 ``normal.`` records) and ``test.csv`` (5,000 other normal records
and 5,000 attack records; the attacks bring ``service`` values that no training row has) from
the 10 % file, runs ``memae train`` and ``memae score`` on them, and computes the AUC from the score
file. Beside it, on the same rows, PyOD's IForest on a one-hot encoding made by hand (pandas
``get_dummies`` over training and test together, the way a user would do it without memae).
Writes ``results/kdd_csv.json`` with the commands, seeds, commit and machine::

    python benchmarks/kdd_csv.py --data-dir "$MEMAE_DATA" --out results/kdd_csv.json

``--hold-out-services a b ...`` keeps the normal records of those services out of training,
so that normal test rows, too, hold services training never saw (one-hot all zeros: they
score as novel, which costs AUC; ``results/kdd_csv_held_out_services.json`` holds such a run
with ``urh_i IRC time pop_3``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from memae.cli import main as memae_main
from memae.data.kddcup import DATA_FILE, NAMES_FILE, read_names
from memae.data.paths import data_dir
from memae.metrics import roc_auc
from memae.provenance import provenance

N_TRAIN = 20_000
N_TEST_NORMAL = 5_000
N_TEST_ATTACK = 5_000


def write_csvs(root: Path, folder: Path, seed: int, held_out: tuple[str, ...]) -> dict[str, int]:
    names = [n for n, _ in read_names(root / "kddcup99" / NAMES_FILE)] + ["label"]
    with gzip.open(root / "kddcup99" / DATA_FILE, "rb") as fh:
        rows = list(csv.reader(io.TextIOWrapper(fh, encoding="ascii")))
    service = names.index("service")
    rng = np.random.default_rng(seed)
    normal = [r for r in rows if r[-1] == "normal."]
    attacks = [r for r in rows if r[-1] != "normal."]
    seen = [r for r in normal if r[service] not in held_out]
    unseen = [r for r in normal if r[service] in held_out]
    order = rng.permutation(len(seen))
    train = [seen[i] for i in order[:N_TRAIN]]
    rest = [seen[i] for i in order[N_TRAIN:]]
    test_normal = unseen + [
        rest[i] for i in rng.choice(len(rest), N_TEST_NORMAL - len(unseen), replace=False)
    ]
    test_attack = [attacks[i] for i in rng.choice(len(attacks), N_TEST_ATTACK, replace=False)]
    test = [
        test_normal[i] if i < len(test_normal) else test_attack[i - len(test_normal)] for i in range(10_000)
    ]
    test = [test[i] for i in rng.permutation(len(test))]
    for name, table in (("train.csv", train), ("test.csv", test)):
        with open(folder / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            writer.writerows(table)
    train_services = {r[service] for r in train}
    return {
        "train_rows": len(train),
        "test_rows": len(test),
        "test_normal": len(test_normal),
        "test_attack": len(test_attack),
        "test_rows_with_unseen_service": sum(r[service] not in train_services for r in test),
    }


def iforest_by_hand(folder: Path, seed: int) -> float:
    import pandas as pd
    from pyod.models.iforest import IForest

    train = pd.read_csv(folder / "train.csv").drop(columns=["label"])
    test = pd.read_csv(folder / "test.csv")
    y = (test.pop("label") != "normal.").astype(int).to_numpy()
    both = pd.get_dummies(pd.concat([train, test]), columns=["protocol_type", "service", "flag"], dtype=float)
    model = IForest(random_state=seed).fit(both.iloc[: len(train)].to_numpy())
    return roc_auc(y, model.decision_function(both.iloc[len(train) :].to_numpy()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="data root (default: $MEMAE_DATA)")
    parser.add_argument("--out", default="results/kdd_csv.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hold-out-services", nargs="*", default=[], metavar="SERVICE")
    args = parser.parse_args()
    root = data_dir(args.data_dir)
    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            counts = write_csvs(root, folder, seed, tuple(args.hold_out_services))
            labels = ["--label-column", "label", "--normal-label", "normal."]
            model, test, out = (str(folder / n) for n in ("m.memae", "test.csv", "s.csv"))
            train = ["train", "--data", str(folder / "train.csv"), *labels, "--out", model]
            train += ["--random-state", str(seed)]
            score = ["score", model, "--data", test, *labels, "--out", out]
            start = time.perf_counter()
            for command in (train, score):
                if memae_main(command) != 0:
                    raise SystemExit(f"memae {' '.join(command)} failed")
            seconds = time.perf_counter() - start
            scores = np.genfromtxt(folder / "s.csv", delimiter=",", names=True)
            auc = roc_auc(scores["label"].astype(int), scores["score"])
            runs.append(
                {
                    "seed": seed,
                    **counts,
                    "memae_auc": auc,
                    "memae_seconds": seconds,
                    "iforest_by_hand_auc": iforest_by_hand(folder, seed),
                    "commands": [
                        "memae " + " ".join(c).replace(str(folder) + "/", "") for c in (train, score)
                    ],
                }
            )
            print(json.dumps(runs[-1]))
    record = {
        "benchmark": "kdd_csv",
        "held_out_services": list(args.hold_out_services),
        "runs": runs,
        "memae_auc_mean": float(np.mean([r["memae_auc"] for r in runs])),
        "iforest_by_hand_auc_mean": float(np.mean([r["iforest_by_hand_auc"] for r in runs])),
        "provenance": provenance(),
    }
    harness.write_json(args.out, record)
    print(
        f"memae AUC {record['memae_auc_mean']:.4f}, IForest by hand {record['iforest_by_hand_auc_mean']:.4f}"
    )


if __name__ == "__main__":
    main()
