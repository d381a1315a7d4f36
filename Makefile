# safs_lite: `make demo` runs the main job, `make test` runs the tests, `make book` builds the notebooks' site. All create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test reproduce benchmark notebooks book clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import safs_lite, torch, torchvision, optuna, nbval" && touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m safs_lite demo

test: install
	$(PY) -m pytest

# The paper's reproduction (set SAFS_DATA for full MNIST): Table 1 over seeds 0-2 with the cpu preset,
# the accuracy-versus-sparsity sweep, then every figure from the saved runs. Finished runs are reused,
# so an interrupted `make reproduce` resumes.
reproduce: install
	$(PY) -m safs_lite reproduce --preset cpu --seeds 0 1 2
	$(PY) -m safs_lite sweep --preset sweep --seeds 0 1 2
	$(PY) -m safs_lite figures --preset cpu --seeds 0 1 2

benchmark: install
	$(PY) benchmarks/throughput.py

# Re-execute every notebook on the data you have (SAFS_DATA=../shared/data for full MNIST; made absolute,
# since the kernels run in notebooks/), then strip widget state and metadata (each figure stays as its PNG output).
notebooks: install
	SAFS_DATA=$(if $(SAFS_DATA),$(abspath $(SAFS_DATA)),) $(VENV)/bin/jupyter nbconvert --to notebook --execute \
		--inplace --ExecutePreprocessor.timeout=3600 notebooks/*.ipynb
	$(PY) tools/clean_notebooks.py notebooks/*.ipynb

# The notebooks as a static website, from their stored outputs (nothing is re-run; offline): build/book/html.
book: install
	$(PY) tools/build_book.py

clean:
	rm -rf $(VENV) .pytest_cache
