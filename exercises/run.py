"""Train a method with your own part, then draw what it learned: python exercises/run.py NAME [train.py options]

    python exercises/run.py rvm_core      # RVM with your gru_step, on the noise square, then the demo pictures
    python exercises/run.py sinkhorn      # SIGMA with your sinkhorn, on shapes videos
    python exercises/run.py info_nce      # ViC-MAE with your info_nce, on shapes videos

Your part goes into the model through its constructor (rvm.RVM(cfg, core_step=...),
sigma.SIGMA(cfg, sinkhorn=...), vicmae.ViCMAE(cfg, info_nce=...)): training runs
train.py's own code with it, and viz.py draws with it. Your file is checked
first (exercises/check.py NAME); --force trains even when a check fails.
Anything after NAME goes to train.py (e.g. --steps 500); the run folder is
runs/exercises/NAME-yours unless you give --out.
"""
import os
import sys

import check

# exercise -> (method, constructor keyword, function in exercises/NAME.py, train.py arguments, viz video)
PARTS = {
    "rvm_core": ("rvm", "core_step", "gru_step", ["--data", "noise_square", "--steps", "5000"], "noise_square"),
    "sinkhorn": ("sigma", "sinkhorn", "sinkhorn", ["--data", "shapes"], "shapes"),
    "info_nce": ("vicmae", "info_nce", "info_nce", ["--data", "shapes"], "shapes"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in PARTS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    force = "--force" in rest
    rest = [a for a in rest if a != "--force"]
    method, keyword, function, train_args, video = PARTS[name]
    ok, message = check.check_implement(name)
    print(message)
    if not ok and not force:
        print(f"fix exercises/{name}.py first (or add --force to train with it anyway)", file=sys.stderr)
        return 1
    part = getattr(check.load_student(name, os.path.join(check.HERE, f"{name}.py")), function)
    parts = {method: {keyword: part}}
    out = rest[rest.index("--out") + 1] if "--out" in rest else os.path.join("runs", "exercises", f"{name}-yours")
    os.chdir(check.ROOT)   # train.py's and viz.py's relative paths are the project's
    import train   # noqa: E402 (after the path is set by check)
    import viz
    train.main(["--method", method, *train_args, *(["--out", out] if "--out" not in rest else []), *rest],
               parts=parts)
    viz.main(["--ckpt", os.path.join(out, "ckpt.pt"), "--video", video, "--out", os.path.join(out, "viz")],
             parts=parts)
    print(f"your {keyword} trained {method}: the pictures are in {os.path.join(out, 'viz')} "
          f"(demo.png, kmeans.png, pca.png); compare them with the reference's run (make demo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
