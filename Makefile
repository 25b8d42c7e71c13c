# Every target installs the verified stack into .venv first (idempotent: a
# second run takes a second; the compiled mmcv wheel is cached in
# ~/.cache/mmpose-afl). `make test` also installs the oldest supported stack
# into .venv-oldest and runs a part of the suite there (docs/installation.md).
PY := .venv/bin/python
PY_OLDEST := .venv-oldest/bin/python

.PHONY: install install-oldest test test-current test-oldest lint format \
	demo demo-full data clean

install:
	bash tools/install_stack.sh

install-oldest:
	bash tools/install_stack.sh --oldest

# two pytest workers (pytest-xdist), one per core of the 2-core CI machine;
# a file's tests stay on one worker, which keeps its fixtures shared.
# Temporary files go to work_dirs/pytest, which pytest empties when a run
# starts (it creates only the last level, hence the mkdir): a run writes
# ~5.7 GB (end-to-end checkpoints), and under /tmp pytest kept the last
# three runs, which filled this machine's disk once
TEST_WORKERS ?= 2

# The oldest stack's leg: the unit tests of every loss, head, hook and
# metric and the import checks (their fast tier), then one short mim train +
# mim test of every method with a resume of AFL. test_compiled.py runs in a
# process of its own: on torch 2.1 its checks that torch.compile built a
# graph fail after other files have run the same functions eagerly in that
# process (it passes alone, as it does in any order on the current torch)
OLDEST_UNIT_TESTS ?= \
	tests/test_models/test_losses/test_afl_loss.py \
	tests/test_models/test_losses/test_afl_heads.py \
	tests/test_models/test_losses/test_loss_weighted.py \
	tests/test_models/test_losses/test_fowkal_loss.py \
	tests/test_models/test_losses/test_fowkal_parts.py \
	tests/test_models/test_losses/test_running_mean_norm.py \
	tests/test_models/test_losses/test_hsm_loss.py \
	tests/test_models/test_losses/test_wahr_loss.py \
	tests/test_models/test_losses/test_gaussian_support.py \
	tests/test_models/test_losses/test_loss_robustness.py \
	tests/test_models/test_heads/test_sahr_head.py \
	tests/test_models/test_heads/test_ae_sahr_head.py \
	tests/test_models/test_conditional_critic.py \
	tests/test_engine/test_afl_critic_trainer.py \
	tests/test_engine/test_amp.py \
	tests/test_engine/test_hooks/test_sigmoid_calibration.py \
	tests/test_evaluation/test_metrics/test_stratified_metric.py \
	tests/test_evaluation/test_metrics/test_wholebody_part_metric.py \
	tests/test_foundation.py \
	tests/test_configs/test_configs_build.py

test: install install-oldest lint test-current test-oldest

# flake8, isort and yapf as MMPose configures them (setup.cfg); `make format`
# rewrites the tree so that `make lint` passes
LINT_PATHS := mmpose_afl mmpose_afl_bootstrap.py setup.py tools benchmarks \
	tests
lint: install
	$(PY) -m flake8 $(LINT_PATHS)
	$(PY) -m isort --check-only --diff $(LINT_PATHS)
	$(PY) -m yapf --recursive --diff $(LINT_PATHS)

format: install
	$(PY) -m isort $(LINT_PATHS)
	$(PY) -m yapf --recursive --in-place $(LINT_PATHS)

test-current: install
	mkdir -p work_dirs
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile \
		--basetemp=work_dirs/pytest \
		--ignore=tests/test_e2e/test_every_method_e2e.py

test-oldest: install-oldest
	mkdir -p work_dirs
	$(PY_OLDEST) -m pytest $(OLDEST_UNIT_TESTS) -m "not e2e" -q \
		-n $(TEST_WORKERS) --dist loadfile --basetemp=work_dirs/pytest-oldest
	$(PY_OLDEST) -m pytest tests/test_models/test_compiled.py -q \
		--basetemp=work_dirs/pytest-oldest
	$(PY_OLDEST) -m pytest tests/test_e2e/test_every_method_e2e.py -q \
		-n $(TEST_WORKERS) --dist load --basetemp=work_dirs/pytest-oldest

# every method briefly, with figures and tables (minutes)
demo: install
	$(PY) tools/demo.py --preset quick

# the configs' 20-epoch schedule on 200 images (about 1.5 h on 2 CPU cores)
demo-full: install
	$(PY) tools/demo.py --preset full

data: install
	$(PY) tools/make_synthetic_data.py --kind coco --out data/synthetic_coco
	$(PY) tools/make_synthetic_data.py --kind wholebody --out data/synthetic_coco_wholebody
	$(PY) tools/make_synthetic_data.py --kind coco --layout multi_scale --out data/synthetic_coco_multi_scale

clean:
	rm -rf work_dirs data

# Speed and peak memory of each method against stock MMPose (losses, AFL
# critic side, HRNet-w32 training step) -> benchmarks/results_cpu.md, and
# benchmarks/results_cuda.md where a GPU is available.
.PHONY: bench bench-accuracy bench-accuracy-gpu
bench: install
	$(PY) benchmarks/bench_speed.py --device cpu
	@if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; \
	then $(PY) benchmarks/bench_speed.py --device cuda; \
	else echo "bench: no GPU, CPU figures only"; fi

# Every method trained with the same small model and budget on the synthetic
# COCO and WholeBody sets (the calibrated cpu preset: batch 8, 12 epochs,
# 3 seeds, a data set per seed; about 1.9 h on 2 CPU cores), with each
# method's paired difference to MSE overall and per difficulty stratum
# -> benchmarks/results_accuracy.md, .png and _paired.png.
# bench-accuracy-gpu: the gpu preset (more data, 256x192, 8 epochs, 3 seeds;
# sized for 8 minutes on one GPU) -> benchmarks/results_accuracy_gpu.md.
bench-accuracy: install
	$(PY) benchmarks/bench_accuracy.py

bench-accuracy-gpu: install
	$(PY) benchmarks/bench_accuracy.py --preset gpu
