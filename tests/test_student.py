"""The student version: generated from the teaching notebook, no answer in it, one stub per
marked region; it stops at its first stub; the checks catch wrong answers; grading a folder scores
what nbgrader's points metadata says."""
import shutil

import nbformat
import papermill
import pytest
import torch
from torch import nn

from pystatsml_tl.cli import main
from pystatsml_tl.models import freeze_backbone, make_model, pretrained_model
from pystatsml_tl.runs.insight import batchnorm_drift
from pystatsml_tl.runs.notebooks import TEACHING_NOTEBOOK, execute_notebook
from pystatsml_tl.teaching import assignment, checks


@pytest.fixture(scope="module")
def source():
    return nbformat.read(TEACHING_NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def student():
    return nbformat.read(assignment.STUDENT_NOTEBOOK, as_version=4)


def _all_text(nb) -> str:
    """Every cell's source and every output's text of a notebook."""
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")) + str(output.get("data", "")))
    return "\n".join(parts)


def test_the_student_version_holds_no_answer_and_one_stub_per_region(source, student):
    answers = assignment.solution_lines(source)
    assert len(answers) > 20 and assignment.solution_regions(source) >= 12
    text = _all_text(student)
    assert [line for line in answers if line in text] == []
    assert text.count("raise NotImplementedError") == assignment.solution_regions(source)
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert "nbval" not in text + str([c.metadata for c in student.cells])
    assert [c.source for c in student.cells if c.cell_type == "markdown"] == \
        [c.source for c in source.cells if c.cell_type == "markdown"]  # the prose unchanged


def test_the_shipped_student_version_is_the_one_the_source_generates(source, student):
    assert nbformat.writes(assignment.student_version(source)) == nbformat.writes(student)


def test_the_teaching_notebook_shows_no_check_and_its_committed_run_skips_the_exercises(source):
    assert "checks." not in "\n".join(c.source for c in source.cells)
    exercises = [c for c in source.cells if assignment.EXERCISE_TAG in c.metadata.get("tags", [])]
    assert len(exercises) == 3 and all(not c.outputs and "nbval-skip" in c.metadata.tags for c in exercises)
    points = assignment.points(assignment.solution_version(source))
    assert sum(points[f"exercise-{k}"] for k in (1, 2, 3)) == 5 and len(points) == 15


def test_the_student_version_stops_at_its_first_stub(student, tmp_path, cache_dir):
    path = tmp_path / "student.ipynb"
    nbformat.write(student, path)
    with pytest.raises(papermill.PapermillExecutionError) as stopped:
        execute_notebook(path, tmp_path / "out.ipynb", {}, cwd=tmp_path)
    assert stopped.value.ename == "NotImplementedError" and "your code here" in stopped.value.evalue
    ran = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    first_stub = next(i for i, c in enumerate(ran.cells) if "raise NotImplementedError" in c.source)
    assert "model_ft.fc" in ran.cells[first_stub].source  # experiment 1's new head
    assert all(c.execution_count is None for c in ran.cells[first_stub + 1:] if c.cell_type == "code")


def _resnet(frozen_backbone=True):
    """A random ResNet18 with a new head, its backbone frozen by the tutorial's loop alone (or not)."""
    model = pretrained_model("resnet18", "none", progress=False)
    model.fc = nn.Linear(512, 10)
    if frozen_backbone:
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith("fc.")
    return model


def test_a_wrong_answer_fails_the_right_check_with_its_message():
    with pytest.raises(AssertionError, match="^no parameter trains: the new head must keep requires_grad=True"):
        checks.only_head_trains(_head_left_frozen())
    with pytest.raises(AssertionError, match="tensors outside the head still train"):
        checks.only_head_trains(_resnet(frozen_backbone=False))
    with pytest.raises(AssertionError, match="gives 1000 scores, not 10"):
        checks.new_head(pretrained_model("resnet18", "none", progress=False), 10)
    loop_only, images = _resnet(), torch.randn(8, 3, 32, 32)
    with pytest.raises(AssertionError, match="moved a BatchNorm running mean"):
        checks.batchnorm_kept(loop_only, images)
    model = make_model("resnet18", "none", 10, trainable=("head",))
    with pytest.raises(AssertionError, match="the optimizer should train the new head only: 0 of its tensors are "
                                             "missing, [0-9]+ others are in it"):
        checks.optimizer_trains(torch.optim.SGD(model.parameters(), lr=0.1), model.fc, "the new head only")
    with pytest.raises(AssertionError, match="not above chance"):
        checks.trained_above_chance({"train": [0.5], "val": [0.05, 0.1]}, 10)
    with pytest.raises(AssertionError, match="freeze_backbone's model moved"):
        checks.drift_measured(_frozen(), batchnorm_drift(_resnet(), images), batchnorm_drift(_resnet(), images))
    with pytest.raises(AssertionError, match="tensors of model_loop still train"):
        checks.drift_measured(_resnet(), 0.1, 0.0)
    checks.drift_measured(_frozen(), batchnorm_drift(_frozen(), images), batchnorm_drift(freeze_backbone(_resnet()),
                                                                                         images))
    checks.only_head_trains(_resnet())  # the right answers pass


def _frozen():
    """A random ResNet18 frozen whole by the tutorial's loop."""
    model = pretrained_model("resnet18", "none", progress=False)
    for param in model.parameters():
        param.requires_grad = False
    return model


def _head_left_frozen():
    """The classic slip: the new head made first, then every parameter frozen."""
    model = pretrained_model("resnet18", "none", progress=False)
    model.fc = nn.Linear(512, 10)
    for param in model.parameters():
        param.requires_grad = False
    return model


def _fast(nb, folder):
    """A submission set to the lesson's cheapest settings: a tiny image folder, one seed for the curve
    and the statistics."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "seeds = 5" in cell.source and "dataset = None" in cell.source
    cell.source = cell.source.replace("seeds = 5", "seeds = 1").replace("dataset = None", f"dataset = {str(folder)!r}")
    return nb


def test_grading_a_folder_gives_the_scores_the_points_imply(source, student, tmp_path, cache_dir, capsys,
                                                            image_folder):
    folder = tmp_path / "submitted"
    folder.mkdir()
    nbformat.write(_fast(assignment.solution_version(source), image_folder), folder / "ada.ipynb")
    nbformat.write(_fast(nbformat.from_dict(student), image_folder), folder / "bob.ipynb")
    shutil.copy(folder / "bob.ipynb", tmp_path / "untouched.ipynb")
    total = sum(assignment.points(student).values())
    assert main(["grade", str(folder)]) == 0
    ada, bob = capsys.readouterr().out.splitlines()
    assert ada == f"ada.ipynb: {total:g} of {total:g} points; every check passed"  # the solution version
    assert bob.startswith(f"bob.ipynb: 0 of {total:g} points; failed: ")  # no stub completed: no check passes
    assert bob.split("failed: ")[1].split(", ") == list(assignment.points(student))
    assert (folder / "bob.ipynb").read_bytes() == (tmp_path / "untouched.ipynb").read_bytes()  # submissions kept
