# Two set-up-free commands for a fresh machine: `make demo` and `make test`.
PY := .venv/bin/python
DEMO_OUT ?= runs/demo-rvm
# the frame model beside it in the figure (RVM Fig. 6: RVM sees the square, a frame model cannot);
# the figure's k-means uses K = 2, the split the noise-square IoU scores (viz.py's default 5 is RVM Sec. 4.4's)
FRAME_OUT ?= runs/demo-siammae
# long enough for the tiny RVM to see the square (docs/experiments.md)
DEMO_STEPS ?= 5000

.PHONY: demo test venv clean site

venv: .venv/.installed

.venv/.installed: requirements.txt
	test -d .venv || python3 -m venv .venv
	$(PY) -m pip install --quiet -r requirements.txt
	touch .venv/.installed

test: venv
	$(PY) -m pytest -q

# the reading site (site.py): each method file beside its comments, any two side by side; open site/index.html
site: venv
	$(PY) site.py

demo: venv
	$(PY) train.py --method rvm --preset tiny --data noise_square --steps $(DEMO_STEPS) --log-every 250 --out $(DEMO_OUT)
	$(PY) train.py --method siammae --preset tiny --data noise_square --log-every 100 --out $(FRAME_OUT)
	$(PY) viz.py --ckpt $(DEMO_OUT)/ckpt.pt --ckpt $(FRAME_OUT)/ckpt.pt --video noise_square --k 2 --out $(DEMO_OUT)/viz

clean:
	rm -rf .venv runs .pytest_cache site
