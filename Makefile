# Every target installs the verified stack into .venv first (idempotent: a
# second run takes a second; the compiled mmcv wheel is cached in
# ~/.cache/mmpose-afl).
PY := .venv/bin/python

.PHONY: install test demo data clean

install:
	bash tools/install_stack.sh

test: install
	$(PY) -m pytest tests -q

demo: install
	$(PY) tools/demo.py

data: install
	$(PY) tools/make_synthetic_data.py --kind coco --out data/synthetic_coco
	$(PY) tools/make_synthetic_data.py --kind wholebody --out data/synthetic_coco_wholebody

clean:
	rm -rf work_dirs data
