"""The README's parameter table names every parameter of the detector."""

import inspect
import re
from pathlib import Path

from memae import MemAEDetector

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_detector_parameter_is_in_the_readme_table() -> None:
    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    params = {
        name
        for name, p in inspect.signature(MemAEDetector.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert params - listed == set()
