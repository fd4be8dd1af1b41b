import json

from memae.demo import DemoConfig, run_demo


def test_demo_writes_table_report_and_figures(tmp_path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path, DemoConfig(epochs=2, classes=(0, 5), seeds=(0,)), log=lines.append)
    assert set(result["mean_auc"]) == {"ae", "memae"}
    assert all(0.0 <= v <= 1.0 for v in result["mean_auc"].values())
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["auc"]["memae"]["5"] == result["auc"]["memae"]["5"]
    for name in ("results.md", "memory_slots.png", "anomaly_reconstructions.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "MemAE" in lines[0]
