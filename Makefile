# Two commands on a fresh machine: `make run` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench lint screenshots clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "qst-station needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/qst-station run

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

# scanner_drift.py runs 10 real-time minutes by default; 2 here (the full run: by hand)
bench: $(STAMP)
	@for script in bench/*.py; do \
	  case $$script in bench/scanner_drift.py) args="--minutes 2";; *) args="";; esac; \
	  echo "== $$script $$args"; $(BIN)/python $$script $$args || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m qst_station.gui.screenshots docs/images

clean:
	rm -rf $(VENV) build *.egg-info
