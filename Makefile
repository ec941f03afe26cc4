# Set-up is part of each target: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= smoke
CONSTRAINTS := .ci/constraints.txt

.PHONY: install run test browser notebooks student site benchmark constraints dist clean

# installs the versions the tests last passed with (CONSTRAINTS); `make constraints` records new ones
$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

constraints: $(STAMP)  ## record the installed versions as the constraints of the next install
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > $(CONSTRAINTS)

browser:  ## Debian's chromium, for the test that opens summary.html in a real browser
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

run: $(STAMP)  ## all experiments, report in reports/ (PROFILE=smoke|quick|tutorial)
	$(BIN)/pystatsml-tl run --profile $(PROFILE)

# one pytest session in TEST_WORKERS processes (pytest-xdist), one thread each: nbval runs the committed
# notebooks first, and the lesson's checks in tests/ read the outputs nbval computed, so the lesson
# executes once (tests/conftest.py keeps each notebook and the checks that read it in one worker)
TEST_WORKERS ?= 2
test: $(STAMP) browser  ## the linter, then the committed notebooks under nbval and the tests
	$(BIN)/ruff check .
	$(BIN)/pystatsml-tl pretrain  # the offline backbone the notebooks use, from the package's bundle: in the cache before nbval compares outputs
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --nbval notebooks tests \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --durations=15

notebooks: $(STAMP)  ## re-execute the committed notebooks with the smoke profile
	$(BIN)/python -m pystatsml_tl.runs.notebooks

student: $(STAMP)  ## regenerate the student version from the teaching notebook (nbgrader's ClearSolutions)
	$(BIN)/python -c "from pystatsml_tl.runs.notebooks import write_student_version; print(write_student_version())"

site: $(STAMP)  ## the course page, offline, from the committed (executed) notebooks: docs/_build/html
	$(BIN)/python docs/build.py

dist: $(STAMP)  ## the sdist, the wheel built from it (the standard build front end), both checked by twine
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

benchmark: $(STAMP)
	$(BIN)/python benchmarks/speed.py --train 10000 --test 2000 --finetune-train 1000 --finetune-test 200 --repeats 3

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build docs/_generated
