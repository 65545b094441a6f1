# Two entry points for people: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test demo standin fmnist lint bench clean

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

# The stand-in study (profiles/standin; ~1 h on 2 cores) and a refresh of its committed small outputs.
STANDIN := results/standin
STANDIN_REF := results/reference/standin
standin: setup fmnist  ## run the stand-in study and copy its report, tables and figures to results/reference/standin
	$(BIN)/snakemake --workflow-profile profiles/standin --cores 2
	mkdir -p $(STANDIN_REF)/tables $(STANDIN_REF)/figures
	cp $(STANDIN)/report.md $(STANDIN)/scope.json $(STANDIN_REF)/
	cp $(STANDIN)/tables/*.md $(STANDIN)/tables/*.csv $(STANDIN_REF)/tables/
	cp $(STANDIN)/tables/claims.md $(STANDIN_REF)/claims.md
	cp $(STANDIN)/figures/*.png $(STANDIN_REF)/figures/
	$(BIN)/python benchmarks/study_cost.py $(STANDIN) > $(STANDIN_REF)/cost.md
	@echo "report: $(STANDIN_REF)/report.md"

# Fashion-MNIST for the demo (prepared into resources/fmnist, where the demo profile reads it): Debian's
# dataset-fashion-mnist when it is there or apt can install it (root), else torchvision's download. When
# neither works, stop here with one line instead of failing minutes later inside a Snakemake job.
FMNIST_HELP := install Debian's dataset-fashion-mnist, or run on a machine with network: $(BIN)/python -m data_prep prepare fmnist --download --out resources/fmnist
fmnist: setup
	@test -f resources/fmnist/manifest.json || test -d /usr/share/datasets/fashion-mnist || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -q && apt-get install -y -q dataset-fashion-mnist; } || \
	  { echo "fmnist: no Debian package here; downloading Fashion-MNIST into resources/fmnist"; \
	    $(BIN)/python -m data_prep prepare fmnist --download --out resources/fmnist; } || \
	  { echo "make demo: no Fashion-MNIST data; $(FMNIST_HELP)" >&2; exit 2; }

lint: setup
	$(BIN)/ruff check fedgmr data_prep tests benchmarks paper_figures

bench: setup
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf results .snakemake
