# Two set-up-free commands for a fresh machine: `make demo` and `make test`.
PY := .venv/bin/python
DEMO_OUT ?= runs/demo-rvm
# RVM sees the square after ~3000 steps of the tiny preset (0.1 s each on a 2-core CPU; README)
DEMO_STEPS ?= 5000

.PHONY: demo test venv clean

venv: .venv/.installed

.venv/.installed: requirements.txt
	test -d .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet -r requirements.txt
	touch .venv/.installed

test: venv
	$(PY) -m pytest -q

demo: venv
	$(PY) train.py --method rvm --preset tiny --data noise_square --steps $(DEMO_STEPS) --log-every 250 --out $(DEMO_OUT)
	@if [ -f viz.py ]; then \
		$(PY) viz.py --ckpt $(DEMO_OUT)/ckpt.pt --video noise_square --out $(DEMO_OUT)/viz; \
	else \
		echo "viz.py is not written yet: the checkpoint is in $(DEMO_OUT)/ckpt.pt and the loss curve in $(DEMO_OUT)/loss.png"; \
	fi

clean:
	rm -rf .venv runs .pytest_cache
