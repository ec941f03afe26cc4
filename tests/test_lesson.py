"""The teaching notebook: the tutorial's code in the open, real images, and why transfer works."""
import json
import re
import subprocess
import sys
import venv

import nbformat
import pytest

from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK, execute_notebook
from pystatsml_tl.teaching.assignment import without_exercises

FIGURES = {"learning_curves_grid": 1, "confusion_matrices": 1, "misclassified_images": 2, "feature_projections": 1,
           "first_layer_filters": 1, "data_efficiency_curve": 1, "finder.plot": 1}
"""Each figure of the lesson: the call that draws it, and how many images its cell shows."""
EXPERIMENTS = ("finetune-sgd", "finetune-adam", "extractor-sgd", "extractor-adam", "scratch", "extractor-random")


def images_by_call(nb) -> dict[str, int]:
    """For each figure call of :data:`FIGURES`, the number of PNG images its cell produced."""
    counts = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for call in FIGURES:
            if call + "(" in cell.source:
                counts[call] = sum("image/png" in o.get("data", {}) for o in cell.outputs)
    return counts


def lesson_table(nb) -> dict[str, list[str]]:
    """The lesson's comparison table (its HTML output): each experiment's row of cells."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and "insight.lesson_table(" in c.source)
    html = next(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {}))
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        name = re.search(r"<th>(.*?)</th>", row)
        cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
        if name and cells:
            rows[name.group(1)] = cells
    return rows


def printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


# smoke_lesson (tests/conftest.py): the lesson executed once per session, by nbval when it ran first
def test_smoke_lesson_draws_every_figure(smoke_lesson):
    assert images_by_call(smoke_lesson) == FIGURES
    assert not any(o.output_type == "error" for c in smoke_lesson.cells if c.cell_type == "code" for o in c.outputs)


def test_smoke_lesson_measures_pretraining_against_random_weights(smoke_lesson):
    table = lesson_table(smoke_lesson)
    assert tuple(table) == EXPERIMENTS
    test_acc = {name: float(cells[4]) for name, cells in table.items()}
    assert all(0 <= acc <= 100 for acc in test_acc.values())
    assert test_acc["finetune-sgd"] > test_acc["scratch"]  # fine-tuning: pretrained beats random weights
    assert test_acc["extractor-adam"] > test_acc["extractor-random"]  # frozen: pretrained beats random
    published = {name: cells[-1] for name, cells in table.items()}
    assert published["finetune-sgd"] == "78.90" and published["extractor-adam"] == "46.43"
    assert published["scratch"] == published["extractor-random"] == ""
    text = printed(smoke_lesson)
    assert "data set digits" in text and "10 classes" in text
    assert "trainable parameters: 11,181,642 of 11,181,642" in text and "trainable parameters: 5,130 of" in text
    # the lesson's central question, resolved in its own run: pretrained minus random fine-tuning
    gains = cell_text(smoke_lesson, "narrative.PRETRAINING_QUESTION")
    for size in (100, 300):
        assert re.search(rf"finetune-sgd \[batch_size=\d+, train_subset={size}\] beats scratch", gains), gains
    drift = [float(v) for v in re.findall(r"after one batch: ([0-9.]+)", text)]
    assert len(drift) == 2 and drift[0] > 0 and drift[1] == 0  # the tutorial's freeze moves BatchNorm, ours does not


DUMP_RESULTS = """
import json
json.dump({"tests": {name: {"accuracy": float(test.accuracy), "predictions": test.predictions.tolist(),
                            "targets": test.targets.tolist()} for name, test in tests.items()},
           "probes": probes, "moved": moved, "classes": data.classes, "curve": curve.to_dict("records"),
           "curve_runs": [{"experiment": m["experiment"], "size": m["parameters"]["train_subset"],
                           "seed": m["parameters"]["seed"], "test_acc": m["test_acc"]} for m in curve_runs]},
          open("lesson-results.json", "w"))
"""
"""Appended by the test (never in the lesson): the results each printed sentence is computed from."""


def cell_text(nb, call: str) -> str:
    """What the code cell that contains ``call`` printed."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and call in c.source)
    return "".join(o.get("text", "") for o in cell.outputs)


def numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?\d+\.\d+", text)]


CURVE_LINE = re.compile(r"- (\d+) images: (.+?) ([\d.]+) % \[([\d.]+), ([\d.]+)\], (.+?) ([\d.]+) % "
                        r"\[([\d.]+), ([\d.]+)\]: (.+)$")


def check_sentences_agree_with_outputs(nb, num_classes: int) -> None:
    """Each sentence the lesson printed against the other outputs of the same run: the test-set
    questions against the table, the probe gap against its two probes, the curve's verdicts against
    its printed intervals and chance, the central question against the curve's means."""
    accuracy = {name: float(cells[4]) for name, cells in lesson_table(nb).items()}
    questions = [line for line in cell_text(nb, "insight.lesson_table(").splitlines() if line.startswith("- ")]
    assert len(questions) == 6
    for line in questions:
        won = re.match(r"- (\S+) beats (\S+) by ([\d.]+) points", line)
        a, b, diff = (won or re.match(r"- (\S+) and (\S+) cannot be told apart at n = 1 \(difference ([-+][\d.]+)",
                                      line)).groups()
        assert float(diff) == pytest.approx(accuracy[a] - accuracy[b], abs=0.11), line
    pretrained, random, gap, chance = numbers(cell_text(nb, "narrative.probe_sentence("))
    assert gap == pytest.approx(pretrained - random, abs=0.11) and chance == pytest.approx(100 / num_classes, abs=0.05)
    means = {}
    for line in cell_text(nb, "narrative.curve_sentences(").splitlines():
        size, better, b_mean, b_low, b_high, worse, w_mean, w_low, w_high, verdict = CURVE_LINE.match(line).groups()
        b_low, b_high, w_low, w_high = map(float, (b_low, b_high, w_low, w_high))
        apart = b_low > w_high or w_low > b_high
        assert ("the bands apart" in verdict) == apart and ("overlap" in verdict) != apart, line
        above = verdict.split(f"above chance ({100 / num_classes:.0f} %): ")[1].split(";")[0]
        assert (better in above.split(", ")) == (b_low > 100 / num_classes), line
        assert (worse in above.split(", ")) == (w_low > 100 / num_classes), line
        means[int(size)] = float(b_mean) - float(w_mean)
    gain_lines = [line for line in cell_text(nb, "narrative.PRETRAINING_QUESTION").splitlines() if line]
    assert len(gain_lines) == len(means) >= 2
    for line, (_, difference) in zip(gain_lines, sorted(means.items())):
        diff = float(re.search(r"(?:by|difference) ([-+]?[\d.]+) points", line).group(1))
        signed = -diff if re.match(r"- scratch .*? beats finetune-sgd", line) else diff
        assert signed == pytest.approx(difference, abs=0.11), line


def test_the_smoke_lessons_sentences_agree_with_its_outputs(smoke_lesson):
    check_sentences_agree_with_outputs(smoke_lesson, 10)
    text = printed(smoke_lesson)
    assert "chance is 10.0 %" in text and re.search(r"\b[0-9] read as [0-9]:", text)  # digits' classes


def test_the_lessons_sentences_follow_its_results_on_a_3_class_folder(image_folder, tmp_path):
    """Every number a sentence prints, recomputed from the run's own results; chance and class names
    are the folder's (3 classes), not the digits'."""
    source = without_exercises(nbformat.read(TEACHING_NOTEBOOK, as_version=4))  # as the committed run
    source.cells.append(nbformat.v4.new_code_cell(DUMP_RESULTS))
    notebook, output = tmp_path / "lesson-with-dump.ipynb", tmp_path / "lesson.ipynb"
    nbformat.write(source, notebook)
    execute_notebook(notebook, output, {"dataset": str(image_folder), "seeds": 2}, cwd=tmp_path)
    nb = nbformat.read(output, as_version=4)
    results = json.loads((tmp_path / "lesson-results.json").read_text())
    assert images_by_call(nb) == FIGURES and "3 classes" in printed(nb)
    assert tuple(lesson_table(nb)) == EXPERIMENTS
    check_sentences_agree_with_outputs(nb, 3)
    for name, cells in lesson_table(nb).items():  # the table's test accuracy is the run's
        assert float(cells[4]) == pytest.approx(100 * results["tests"][name]["accuracy"], abs=0.051)
    # the test set's questions: each difference is the two accuracies' difference, a minus b
    accuracy = {name: 100 * test["accuracy"] for name, test in results["tests"].items()}
    questions = [line for line in cell_text(nb, "insight.lesson_table(").splitlines() if line.startswith("- ")]
    assert len(questions) == 6
    for line in questions:
        verdict = re.match(r"- (\S+) beats (\S+) by ([\d.]+) points", line)
        if verdict:
            a, b, diff = verdict.groups()
            assert float(diff) == pytest.approx(accuracy[a] - accuracy[b], abs=0.051)
        else:
            a, b, diff = re.match(r"- (\S+) and (\S+) cannot be told apart at n = 1 \(difference ([-+][\d.]+)",
                                  line).groups()
            assert float(diff) == pytest.approx(accuracy[a] - accuracy[b], abs=0.051)
    # confusions: the folder's class names and the run's own count of errors
    for line in cell_text(nb, "narrative.confusion_sentence(").splitlines():
        name = line.split(":")[0]
        test = results["tests"][name]
        wrong = sum(p != t for p, t in zip(test["predictions"], test["targets"]))
        expected = f"{wrong} of {len(test['targets'])} test images wrong" if wrong else "no test image wrong"
        assert expected in line
        assert not re.search(r"\b[0-9] read as", line)  # class names, not digits
    # probes: both accuracies, their gap, and chance at one in three
    pretrained, random = (results["probes"][k] for k in ("pretrained (synthetic)", "random weights"))
    probe_line = cell_text(nb, "narrative.probe_sentence(")
    assert numbers(probe_line) == pytest.approx([100 * pretrained, 100 * random, 100 * (pretrained - random), 33.3],
                                                abs=0.051)
    assert f"moved the first layer by {100 * results['moved']:.1f} % of its norm" in cell_text(
        nb, "narrative.filters_sentence(")
    # the curve: bands apart or overlapping, and above chance or not, as the run's intervals say
    curve_lines = cell_text(nb, "narrative.curve_sentences(").splitlines()
    by_size = {}
    for row in results["curve"]:
        by_size.setdefault(row["train_images"], {})[row["setting"]] = row
    assert len(curve_lines) == len(by_size)
    for line, (size, rows) in zip(curve_lines, sorted(by_size.items())):
        better, worse = rows["fine-tuned (pretrained)"], rows["fine-tuned (random weights)"]
        apart = better["ci_low"] > worse["ci_high"] or worse["ci_low"] > better["ci_high"]
        assert line.startswith(f"- {size} images:") and ("the bands apart" in line) == apart
        above = [name for name, row in rows.items() if row["ci_low"] > 100 / 3]
        assert f"above chance (33 %): {', '.join(above) or 'none'}" in line
    # the central question: pretrained minus random, seed by seed, at each size
    runs = {(m["experiment"], m["size"], m["seed"]): m["test_acc"] for m in results["curve_runs"]}
    gain_lines = [line for line in cell_text(nb, "narrative.PRETRAINING_QUESTION").splitlines() if line]
    assert len(gain_lines) == len(by_size)
    for line, size in zip(gain_lines, sorted(by_size)):
        gains = [100 * (runs[("finetune-sgd", size, seed)] - runs[("scratch", size, seed)]) for seed in (0, 1)]
        diff = re.search(r"(?:by|difference) ([-+]?[\d.]+) points", line).group(1)
        assert abs(float(diff)) == pytest.approx(abs(sum(gains) / 2), abs=0.051)
        assert "finetune-sgd" in line and "scratch" in line


MARKDOWN_PERCENTS = {"95", "5", "100", "0"}
"""Percentages the lesson's prose may state: an interval's level, a test's level, an accuracy's bounds."""
MEASURED_WORDS = r"\b(beats?|outperforms?|better than|worse than|near chance|nineties|fraction of a percent|" \
                 r"far behind|climbs fastest|lies above|stays near)\b"
"""Words that state a measured direction: in this lesson, printed from results, never written in prose."""


def test_the_lessons_prose_states_no_measured_number():
    prose = "\n".join(c.source for c in nbformat.read(TEACHING_NOTEBOOK, as_version=4).cells
                      if c.cell_type == "markdown")
    prose = re.sub(r"<https?://[^>]+>|\(https?://[^)]+\)", "", prose)  # addresses hold digits of no meaning
    assert set(re.findall(r"(\d+(?:\.\d+)?)\s*%", prose)) <= MARKDOWN_PERCENTS
    assert not re.findall(r"\d+(?:\.\d+)?\s*points", prose)
    assert set(re.findall(r"\d+\.\d+", prose)) <= {"1.2"}  # 1.2 million ImageNet photographs
    assert not re.findall(MEASURED_WORDS, prose, flags=re.I)


def test_the_experiment_cells_show_the_tutorials_steps():
    cells = nbformat.read(TEACHING_NOTEBOOK, as_version=4).cells
    sources = [c.source for c in cells if c.cell_type == "code"]
    sections: dict[str, str] = {}  # the code of each numbered experiment section ("## 1. ...")
    header = None
    for cell in cells:
        headers = re.findall(r"^## .*$", cell.source, flags=re.M) if cell.cell_type == "markdown" else []
        if headers:
            header = headers[-1] if re.match(r"## [1-4]\. ", headers[-1]) else None
        elif cell.cell_type == "code" and header:
            sections[header] = sections.get(header, "") + cell.source + "\n"
    experiments = list(sections.values())
    assert len(experiments) == 4 and all("train_val_model(model_" in s for s in experiments)
    for source in experiments:
        flat = " ".join(source.split())
        assert "resnet18(weights=ResNet18_Weights.DEFAULT)" in source
        assert "nn.Linear(" in source and "lr_scheduler.StepLR(" in source
        assert re.search(r"train_val_model\(model_\w+(\.fc)?, criterion, optimizer_\w+, \w*loaders, "
                         r"scheduler=exp_lr_scheduler, num_epochs=epochs, log_interval=", flat)
    finetune_sgd, finetune_adam, extractor_sgd, extractor_adam = experiments
    assert "optim.SGD(model_ft.parameters()" in finetune_sgd and "optim.Adam(model_ft.parameters()" in finetune_adam
    assert "optim.SGD(model_conv.fc.parameters()" in extractor_sgd
    assert "optim.Adam(model_conv.fc.parameters()" in extractor_adam
    assert "model_ft.fc = nn.Linear(num_ftrs, D_out)" in finetune_sgd
    assert "cached_feature_loaders(model_conv" in extractor_sgd and "freeze_backbone(" in extractor_adam
    freezing = next(s for s in sources if "param.requires_grad = False" in s)
    assert "for param in model_conv.parameters():\n    param.requires_grad = False" in freezing
    assert any("freeze_backbone(model_conv)" in s and "batchnorm_drift" in s for s in sources)


def test_nothing_for_the_test_suite_in_what_students_read():
    nb = nbformat.read(TEACHING_NOTEBOOK, as_version=4)
    for cell in nb.cells:
        assert "NBVAL" not in cell.source.upper()
        assert "sanity" not in cell.source
        assert set(cell.metadata.get("tags", [])) <= {"parameters", "nbval-ignore-output", "exercise", "nbval-skip"}
    lines = printed(nb).splitlines()
    assert not [line for line in lines if re.search(r"(:|^)\s*(True|False)\s*$", line)]
    assert not [line for line in lines if line.startswith("{")]  # no raw dicts


def test_the_first_cell_says_how_to_install_the_package_when_it_is_missing(tmp_path):
    first = next(c.source for c in nbformat.read(TEACHING_NOTEBOOK, as_version=4).cells if c.cell_type == "code")
    venv.create(tmp_path / "bare", with_pip=False)  # a fresh Python without the package
    python = tmp_path / "bare" / "bin" / "python"
    done = subprocess.run([str(python), "-c", first], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    message = (done.stdout + done.stderr).strip()
    assert "pip install -e ." in message and "wheel" in message and "Traceback" not in message
    assert len(message.splitlines()) == 1 and "pip install pystatsml-tl" not in message  # no route that does not exist
    with_package = subprocess.run([sys.executable, "-c", first], capture_output=True, text=True, timeout=120)
    assert with_package.returncode == 0 and with_package.stdout == ""


def test_the_first_cell_shows_the_error_of_an_installed_package_that_fails_to_import(tmp_path):
    """Installed but broken (on Windows, the import of a POSIX-only module was such a case): the
    package's own error in full, not an invitation to install what is installed."""
    first = next(c.source for c in nbformat.read(TEACHING_NOTEBOOK, as_version=4).cells if c.cell_type == "code")
    broken = tmp_path / "site" / "pystatsml_tl"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("import fcntl_that_is_missing\n")
    venv.create(tmp_path / "bare", with_pip=False)
    done = subprocess.run([str(tmp_path / "bare" / "bin" / "python"), "-c", first], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, env={"PYTHONPATH": str(tmp_path / "site")})
    assert done.returncode != 0 and "Traceback" in done.stderr
    assert "No module named 'fcntl_that_is_missing'" in done.stderr and "pip install" not in done.stderr
