# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.idcbench-installed

.PHONY: demo test bench bench-gpu leaderboard setup clean

$(STAMP): pyproject.toml setup.py scripts/setup.sh
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup.sh
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m idcbench demo

test: $(STAMP)
	$(PY) -m pytest tests -q

bench: $(STAMP)
	$(PY) -m pytest benchmarks -q -o python_files="bench_*.py" --benchmark-only --benchmark-columns=min,median,max,rounds
	$(PY) scripts/profile_tiny_training.py --stage 1 --steps 10 --warmup 3 --profiled 5 --threads 1 --config stage1.freeze_intra=false

bench-gpu: $(STAMP)
	$(PY) benchmarks/gpu_check.py --out gpu_check.json

leaderboard: $(STAMP)
	$(PY) -m idcbench leaderboard --runs-dir leaderboard/runs --out leaderboard

clean:
	rm -rf $(VENV) build *.egg-info
