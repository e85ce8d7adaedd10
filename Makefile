# WanPod: `make run` starts the main job, `make test` runs every test. Both set up what they need.
PY ?= python3
WORKER_VENV := .venvs/worker
APP_VENV := .venvs/app

.PHONY: run test test-comfyui venvs lint format

venvs: $(WORKER_VENV)/.stamp $(APP_VENV)/.stamp

# The worker's environment (runpod SDK) and the app's (gradio) cannot be one: tomlkit pins differ.
$(WORKER_VENV)/.stamp: requirements/worker.txt requirements/emulators.txt requirements/dev-worker.txt
	$(PY) -m venv $(WORKER_VENV)
	$(WORKER_VENV)/bin/python -m pip install -q --upgrade pip
	$(WORKER_VENV)/bin/python -m pip install -q -r requirements/dev-worker.txt
	touch $@

$(APP_VENV)/.stamp: requirements/app.txt requirements/emulators.txt requirements/dev-app.txt
	$(PY) -m venv $(APP_VENV)
	$(APP_VENV)/bin/python -m pip install -q --upgrade pip
	$(APP_VENV)/bin/python -m pip install -q -r requirements/dev-app.txt
	touch $@

run: venvs
	bash scripts/run.sh

test: venvs
	bash scripts/test.sh

# The optional real-ComfyUI tier: `make test-comfyui COMFYUI_DIR=/path/to/ComfyUI [COMFYUI_PYTHON=...]`
test-comfyui: $(WORKER_VENV)/.stamp
	COMFYUI_DIR="$(COMFYUI_DIR)" COMFYUI_PYTHON="$(COMFYUI_PYTHON)" bash scripts/test_comfyui.sh

lint: venvs
	$(WORKER_VENV)/bin/ruff check . && $(WORKER_VENV)/bin/ruff format --check .

format: venvs
	$(WORKER_VENV)/bin/ruff format . && $(WORKER_VENV)/bin/ruff check --fix .
