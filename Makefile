# Two commands do everything on a fresh machine with Python 3.11 and make:
#   make demo   set up, build a small synthetic prefecture, run it, start the web app
#   make test   set up, run the tests
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOME_DIR ?= data/demo
SIZE ?= small
PORT ?= 8000

.PHONY: setup test test-slow test-all lint demo bench lock clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Installs the pinned tree, then bidui itself without letting pip re-resolve anything.
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Byte-compiled once here: the environment may forbid Python to write .pyc files as it imports
# (PYTHONDONTWRITEBYTECODE), and every process would compile bidui's sources again (0.04 s for
# the linker alone). Stale ones are ignored by Python, so this only ever saves time.
setup: $(VENV)/.installed
	$(BIN)/python -m compileall -q bidui

lint: setup
	$(BIN)/ruff check .

# Tests run in parallel, one pytest-xdist worker per core (at most four): most of them run whole
# nights of a small prefecture, mostly in one Python thread. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --maxprocesses=4

test: setup lint
	$(BIN)/pytest -m "not slow" $(XDIST)

# Slow suites (marked `slow`); pytest's "no tests collected" (exit 5) is not a failure.
test-slow: setup
	$(BIN)/pytest -m slow $(XDIST); rc=$$?; [ $$rc -eq 5 ] && exit 0 || exit $$rc

test-all: test test-slow

# Both nights through the nightly flow (Prefect, with an ephemeral server: none to start). The
# second night carries a truncated property file that ingest holds: its clues stay as they were.
DEMO_PREFECT := PREFECT_HOME=$(abspath $(HOME_DIR))/prefect PREFECT_SERVER_ANALYTICS_ENABLED=false \
	PREFECT_API_BLOCKS_REGISTER_ON_START=false PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90
demo: setup
	$(BIN)/bidui --home $(HOME_DIR) synth --out $(HOME_DIR) --size $(SIZE) --nights 2 --seed 7
	for night in $(HOME_DIR)/inbox/*/; do $(DEMO_PREFECT) $(BIN)/bidui --home $(HOME_DIR) run $$night; \
		rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 2 ] || exit $$rc; done  # 2: a file held (night 2's cut one)
	$(BIN)/bidui --home $(HOME_DIR) report
	$(BIN)/python -m bidui.clues.demo_users $(HOME_DIR)
	@echo "open http://127.0.0.1:$(PORT) and sign in with one of the users above (Ctrl-C stops the web app)"
	$(BIN)/bidui --home $(HOME_DIR) serve --port $(PORT)

# Every page at desktop and phone width, in the order of a week's work, into docs/screenshots.
screenshots: setup
	rm -f docs/screenshots/*.png
	BIDUI_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_browser_week.py \
		tests/test_browser_quality.py tests/test_browser_inspection.py tests/test_browser_whatif.py

# Every benchmark, one after another, into docs/benchmarks.md (make bench SIZE=large for the goals).
bench: setup
	$(BIN)/python bench/report.py --size $(SIZE)

# Re-pin the whole tree from requirements.in (run by a developer, not by CI).
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.in
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^bidui' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
