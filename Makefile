# Every target installs the verified stack into .venv first (idempotent: a
# second run takes a second; the compiled mmcv wheel is cached in
# ~/.cache/mmpose-afl). `make test` also installs the oldest supported stack
# into .venv-oldest and runs a part of the suite there (docs/installation.md).
PY := .venv/bin/python
PY_OLDEST := .venv-oldest/bin/python

.PHONY: install install-oldest test test-current test-oldest demo demo-full \
	data clean

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
# metric, the import and packaging checks, and one short mim train + mim test
# of every method with a resume of AFL (tests/test_every_method_e2e.py, which
# the current leg leaves out: its other files train every method already)
OLDEST_TESTS ?= tests/test_every_method_e2e.py tests/test_foundation.py

test: install install-oldest test-current test-oldest

test-current: install
	mkdir -p work_dirs
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile \
		--basetemp=work_dirs/pytest \
		--ignore=tests/test_every_method_e2e.py

test-oldest: install-oldest
	mkdir -p work_dirs
	$(PY_OLDEST) -m pytest $(OLDEST_TESTS) -q -n $(TEST_WORKERS) \
		--dist loadfile --basetemp=work_dirs/pytest-oldest

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
