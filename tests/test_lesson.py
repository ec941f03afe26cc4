"""The teaching notebook: the tutorial's code in the open, real images, and why transfer works."""
import re
import subprocess
import sys
import venv

import nbformat

from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK, execute_notebook

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
    drift = [float(v) for v in re.findall(r"after one batch: ([0-9.]+)", text)]
    assert len(drift) == 2 and drift[0] > 0 and drift[1] == 0  # the tutorial's freeze moves BatchNorm, ours does not


def test_lesson_runs_on_another_image_folder(image_folder, tmp_path):
    output = tmp_path / "lesson.ipynb"
    execute_notebook(TEACHING_NOTEBOOK, output, {"dataset": str(image_folder), "seeds": 1},
                     cwd=TEACHING_NOTEBOOK.parent)
    nb = nbformat.read(output, as_version=4)
    assert images_by_call(nb) == FIGURES
    assert "3 classes" in printed(nb) and tuple(lesson_table(nb)) == EXPERIMENTS


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
        assert set(cell.metadata.get("tags", [])) <= {"parameters", "nbval-ignore-output"}
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
    assert "pip install pystatsml-tl" in message and "Traceback" not in message and len(message.splitlines()) == 1
    with_package = subprocess.run([sys.executable, "-c", first], capture_output=True, text=True, timeout=120)
    assert with_package.returncode == 0 and with_package.stdout == ""
