# Two set-up-free commands for a fresh machine: `make demo` and `make test`.
PY := .venv/bin/python
DEMO_OUT ?= runs/demo-rvm
# the frame model beside it in the figure (RVM Fig. 6: RVM sees the square, a frame model cannot); the figure's
# k-means uses viz.py's K = 5 (RVM Sec. 4.4) and outlines the cluster that best matches the square
FRAME_OUT ?= runs/demo-siammae
# long enough for the tiny RVM to see the square (docs/experiments.md)
DEMO_STEPS ?= 5000
# make gallery: each method on a held-out video of the world it trained on, beside its random-init twin (viz.py
# --gallery). RVM on the noise square (make demo's run when present); SiamMAE, ViC-MAE and SIGMA in the pattern
# world, with the steps of claims.py's runs there. A finished run in its folder is reused (--auto-resume).
GALLERY_RUNS ?= runs/gallery
GALLERY_WORLD ?= shapes:pattern=true:side=20,40
GALLERY_STEPS ?= 1000
SIGMA_STEPS ?= 2500
GALLERY_FRAMES ?= 64
# more train.py flags for every gallery run (the test's: a batch of 2)
GALLERY_TRAIN ?=

.PHONY: demo gallery test venv clean site

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
	$(PY) train.py --method rvm --preset tiny --data noise_square --steps $(DEMO_STEPS) --log-every 250 \
		--out $(DEMO_OUT) --auto-resume
	$(PY) train.py --method siammae --preset tiny --data noise_square --log-every 100 --out $(FRAME_OUT) --auto-resume
	$(PY) viz.py --ckpt $(DEMO_OUT)/ckpt.pt --ckpt $(FRAME_OUT)/ckpt.pt --video noise_square --out $(DEMO_OUT)/viz

gallery: venv
	$(PY) train.py --method rvm --preset tiny --data noise_square --steps $(DEMO_STEPS) --log-every 250 \
		--out $(DEMO_OUT) --auto-resume $(GALLERY_TRAIN)
	for m in siammae vicmae; do $(PY) train.py --method $$m --preset tiny --data $(GALLERY_WORLD) \
		--steps $(GALLERY_STEPS) --log-every 100 --out $(GALLERY_RUNS)/$$m --auto-resume $(GALLERY_TRAIN) || exit 1; done
	$(PY) train.py --method sigma --preset tiny --data $(GALLERY_WORLD) --steps $(SIGMA_STEPS) --log-every 250 \
		--out $(GALLERY_RUNS)/sigma --auto-resume $(GALLERY_TRAIN)
	$(PY) viz.py --gallery --ckpt $(DEMO_OUT)/ckpt.pt --ckpt $(GALLERY_RUNS)/siammae/ckpt.pt \
		--ckpt $(GALLERY_RUNS)/vicmae/ckpt.pt --ckpt $(GALLERY_RUNS)/sigma/ckpt.pt --frames $(GALLERY_FRAMES) \
		--out $(GALLERY_RUNS)

clean:
	rm -rf .venv runs .pytest_cache site
