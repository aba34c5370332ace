# The two commands a newcomer needs: `make run` and `make test`.
# Each installs what it needs first (system packages, .venv, pinned packages).

VENV   := .venv
BIN    := $(VENV)/bin
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
DEPS   := pyproject.toml constraints.txt scripts/bootstrap.sh

.PHONY: run test lint docs typecheck bench bench-quick bench-floor setup clean

$(STAMP_RUN): $(DEPS)
	bash scripts/bootstrap.sh
	touch $@

$(STAMP_TEST): $(DEPS)
	bash scripts/bootstrap.sh --test
	touch $@ $(STAMP_RUN)

setup: $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/soundforge serve

# The settings tables in these files are written from config.py by cog.
COGGED := README.md docs/pipeline.md

test: $(STAMP_TEST)
	$(BIN)/ruff check src tests bench
	$(BIN)/cog --check $(COGGED)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP_TEST)
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/cog --check $(COGGED)

# Rewrite the generated parts of the docs after changing a setting.
docs: $(STAMP_TEST)
	$(BIN)/cog -r $(COGGED)

typecheck: $(STAMP_TEST)
	$(BIN)/mypy src

bench: $(STAMP_TEST)
	$(BIN)/python bench/separation.py
	$(BIN)/python bench/devices.py
	$(BIN)/python bench/roformer.py

bench-quick: $(STAMP_TEST)
	$(BIN)/python bench/separation.py --quick
	$(BIN)/python bench/devices.py --quick
	$(BIN)/python bench/roformer.py --quick

bench-floor: $(STAMP_TEST)
	$(BIN)/python bench/floor.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
