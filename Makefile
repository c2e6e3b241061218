# The two commands: `make demo` runs the platform, `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test fuzz lint format stop-db

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# --no-deps: musicnn's metadata pins TensorFlow 1.x and numpy<1.17; we only read its files
	$(BIN)/python -m pip install --quiet --no-deps musicnn==0.1.0
	# --no-deps: aisfx pins librosa 0.9.2 and numpy 1.23; we only read its checkpoint
	$(BIN)/python -m pip install --quiet --no-deps aisfx==0.1.2
	# --no-deps: basic-pitch pulls TensorFlow on Linux; we run its ONNX model with onnxruntime
	$(BIN)/python -m pip install --quiet --no-deps basic-pitch==0.4.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python platform/local_stack.py demo

test: $(STAMP)
	$(BIN)/python -m pytest

# Schemathesis against the live test server as anonymous, maker and holder (tests/fuzz);
# reports in .state/fuzz/. A few minutes; part of CI.
fuzz: $(STAMP)
	LOG_LEVEL=ERROR $(BIN)/python -m pytest -m fuzz tests/fuzz -p no:cacheprovider
	@for role in anonymous maker holder; do \
	  printf '%-10s %s\n' "$$role" "$$(grep -h 'generated' .state/fuzz/$$role.txt | tail -1)"; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

stop-db: $(STAMP)
	$(BIN)/python platform/local_stack.py stop-db
