# Two entry points for people: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: setup test demo fmnist lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[workflow,test]"
	touch $@

setup: $(BIN)/.installed  ## create .venv with everything (torch CPU, snakemake, test tools)

test: setup  ## run the whole test suite (what .ci/run runs)
	$(BIN)/python -m pytest

demo: setup fmnist  ## prepare offline stand-in data and run the demo grid end to end
	$(BIN)/snakemake --workflow-profile profiles/demo --cores 2
	@echo "report: results/demo/report.md"

# Fashion-MNIST for the demo comes from Debian's dataset-fashion-mnist (root + apt), if not already there.
fmnist:
	@test -d /usr/share/datasets/fashion-mnist || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -q && apt-get install -y -q dataset-fashion-mnist; } || \
	  echo "note: install dataset-fashion-mnist, or run: $(BIN)/python -m data_prep prepare fmnist --download --out resources/fmnist"

lint: setup
	$(BIN)/ruff check fedgmr data_prep tests benchmarks paper_figures

bench: setup
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf results .snakemake
