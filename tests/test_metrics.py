"""metrics.json versions: an older run stays complete and is read; a broken file is named in the report."""
import json

from fakes import fake_metrics, write_run

from pystatsml_tl.runs.metrics import SCHEMA, read_metrics
from pystatsml_tl.runs.report import collect_runs, unreadable_runs, write_report


def _schema_1(metrics: dict) -> dict:
    """A run as the first version wrote it: no schema key, the kind under settings.strategy."""
    old = {k: v for k, v in metrics.items() if k != "schema"}
    return old | {"settings": {"strategy": "extractor", "optimizer": "adam", "weights": "synthetic"}}


def test_a_schema_1_run_is_complete_and_read_in_the_current_shape(tmp_path):
    path = write_run(tmp_path / "extractor-adam" / "seed-0", _schema_1(fake_metrics("extractor-adam", 0, 70)))
    found = read_metrics(path)
    assert found.complete and found.schema == 1 < SCHEMA
    assert found.metrics["settings"]["kind"] == "extractor" and "strategy" not in found.metrics["settings"]
    runs, failures = collect_runs(tmp_path)
    assert [r["settings"]["kind"] for r in runs] == ["extractor"] and failures == []


def test_a_truncated_metrics_file_is_named_in_the_report_with_its_reason(tmp_path):
    for seed in (0, 1, 2):
        write_run(tmp_path / "finetune-sgd" / f"seed-{seed}", fake_metrics("finetune-sgd", seed, 70 + seed))
    broken = tmp_path / "finetune-sgd" / "seed-2" / "metrics.json"
    broken.write_text(broken.read_text()[:200])
    assert not read_metrics(broken).complete and "not valid JSON" in read_metrics(broken).problem
    assert unreadable_runs(tmp_path) == [{"path": "finetune-sgd/seed-2",
                                          "problem": read_metrics(broken).problem.join(["metrics.json ", ""])}]
    write_report(tmp_path)
    page = (tmp_path / "summary.md").read_text()
    assert "2 complete run(s), 0 failed, 1 unreadable" in page
    assert "`finetune-sgd/seed-2`: metrics.json is not valid JSON" in page


def test_a_file_missing_a_key_of_its_schema_names_the_key(tmp_path):
    metrics = fake_metrics("scratch", 0, 60)
    del metrics["test_targets"]
    path = write_run(tmp_path / "scratch" / "seed-0", metrics)
    found = read_metrics(path)
    assert not found.complete and found.problem == "lacks test_targets (schema 2)"
    assert json.loads(path.read_text())["schema"] == 2
