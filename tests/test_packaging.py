"""The release: sdist and wheel built and checked, the wheel installed into a fresh environment runs from elsewhere."""
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import nbformat
import pytest

from pystatsml_tl.cli import main

ROOT = Path(__file__).resolve().parent.parent


FIRST_CELLS = 3
"""The lesson's cells up to its parameters: the install check, the import, the parameters."""


def fresh_environment(folder: Path) -> Path:
    """A new virtual environment whose Python sees this one's dependencies (torch among them) through a
    path file, but none of this package: site-packages' own ``.pth`` files (the editable install's
    among them) are not read from a path that a path file adds. Returns its Python."""
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dependencies = sysconfig.get_paths()["purelib"]
    Path(site, "dependencies.pth").write_text(dependencies + "\n")
    return python


def test_the_release_builds_checks_and_installs_in_a_fresh_environment(tmp_path):
    """``make dist``'s steps: the sdist, the wheel built from it, twine's check; then the wheel (not the
    checkout) installed into a fresh environment runs the lesson's first cells and a smoke run elsewhere."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)], check=True,
                   cwd=tmp_path, capture_output=True)
    sdist, wheel = next(dist.glob("pystatsml_tl-*.tar.gz")), next(dist.glob("pystatsml_tl-*.whl"))
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
                             capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.count("PASSED") == 2, checked.stdout + checked.stderr
    names = zipfile.ZipFile(wheel).namelist()
    assert {"pystatsml_tl/bundled_notebooks/experiment.ipynb",
            "pystatsml_tl/bundled_notebooks/transfer_learning.ipynb"} <= set(names)
    assert any(name.startswith("pystatsml_tl/bundled_weights/resnet18-fractals-") for name in names)
    python = fresh_environment(tmp_path / "env")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the dependencies' data files (nbconvert's templates) come with them from this environment
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "PYSTATSML_TL_CACHE": str(tmp_path / "cache"), "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")}

    def command(*args):
        return subprocess.run([str(python), "-m", "pystatsml_tl", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=600)

    where = subprocess.run([str(python), "-c", "import pystatsml_tl; print(pystatsml_tl.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "env")  # the installed wheel, not the checkout
    done = command("run", "--profile", "smoke", "--experiments", "extractor-adam", "--seeds", "1", "--device", "cpu",
                   "--set", "epochs=1", "--set", "train_subset=100", "--set", "test_subset=50",
                   "--output-dir", "report")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Installed the offline backbone bundled with the package" in done.stderr  # not pretrained first
    assert (elsewhere / "report" / "extractor-adam" / "seed-0" / "metrics.json").is_file()
    copied = command("notebooks", "mine")
    assert copied.returncode == 0 and sorted(p.name for p in (elsewhere / "mine").iterdir()) == [
        "experiment.ipynb", "transfer_learning.ipynb"]
    # the lesson's first cells in a kernel of the new environment: it imports the installed copy
    lesson = nbformat.read(elsewhere / "mine" / "transfer_learning.ipynb", as_version=4)
    lesson.cells = [*[c for c in lesson.cells if c.cell_type == "code"][:FIRST_CELLS],
                    nbformat.v4.new_code_cell("import pystatsml_tl\nprint(pystatsml_tl.__file__)")]
    nbformat.write(lesson, elsewhere / "first-cells.ipynb")
    ran = subprocess.run([str(python), "-m", "papermill", "first-cells.ipynb", "first-cells-out.ipynb",
                          "--kernel", "python3"], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    out = nbformat.read(elsewhere / "first-cells-out.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in out.cells[-1].outputs)
    assert Path(printed.strip()).is_relative_to(tmp_path / "env")


def test_notebooks_command_keeps_what_is_there(tmp_path, capsys):
    assert main(["notebooks", str(tmp_path)]) == 0
    (tmp_path / "experiment.ipynb").write_text("my edits")
    with pytest.raises(SystemExit) as info:
        main(["notebooks", str(tmp_path)])
    assert info.value.code == 2 and "already exist" in capsys.readouterr().err
    assert (tmp_path / "experiment.ipynb").read_text() == "my edits"
    assert main(["notebooks", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "experiment.ipynb").read_text() != "my edits"
