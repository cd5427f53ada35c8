"""Train a method with your own part, then draw what it learned: python exercises/run.py NAME [train.py options]

    python exercises/run.py rvm_core      # RVM with your gru_step, on the noise square, then the demo pictures
    python exercises/run.py sinkhorn      # SIGMA with your sinkhorn, on shapes videos
    python exercises/run.py info_nce      # ViC-MAE with your info_nce, on shapes videos

--file PATH trains with another file, --solution with the project's reference.
Your part goes into the model through its constructor (rvm.RVM(cfg, core_step=...),
sigma.SIGMA(cfg, sinkhorn=...), vicmae.ViCMAE(cfg, info_nce=...)): training runs
train.py's own code with it, and viz.py draws with it. Your file is checked
first (exercises/check.py NAME); --force trains even when a check fails.
Anything after NAME goes to train.py (e.g. --steps 500); the run folder is
runs/exercises/NAME-yours unless you give --out.
"""
import argparse
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="other options go to train.py",
                                     allow_abbrev=False)   # so that train.py's --set, --steps, ... pass through
    parser.add_argument("name", choices=list(PARTS), help="the exercise whose part to train with")
    parser.add_argument("--file", help="your file (default exercises/NAME.py)")
    parser.add_argument("--solution", action="store_true", help="train with the project's reference instead")
    parser.add_argument("--force", action="store_true", help="train even when a check fails")
    args, rest = parser.parse_known_args(argv)
    method, keyword, function, train_args, video = PARTS[args.name]
    path = os.path.abspath(args.file or os.path.join(check.HERE, f"{args.name}.py"))
    ok, message = check.check_implement(args.name, args.solution, path)
    print(message)
    if not ok and not args.force:
        print(f"fix {os.path.relpath(path)} first (or add --force to train with it anyway)", file=sys.stderr)
        return 1
    if args.solution:
        part = check.IMPLEMENT[args.name]["reference"][function]
    else:
        try:
            part = getattr(check.load_student(args.name, path), function)
        except Exception as e:   # --force on a file that does not import
            print(f"error: {os.path.relpath(path)}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    parts = {method: {keyword: part}}
    default = os.path.join(os.path.relpath(check.ROOT), "runs", "exercises", f"{args.name}-yours")
    out = rest[rest.index("--out") + 1] if "--out" in rest[:-1] else default
    import train
    import viz
    train.main(["--method", method, *train_args, "--out", out, *rest], parts=parts)   # a later --out wins
    viz.main(["--ckpt", os.path.join(out, "ckpt.pt"), "--video", video, "--out", os.path.join(out, "viz")],
             parts=parts)
    print(f"{method} trained with {'the reference' if args.solution else 'your'} {function}: the pictures are in "
          f"{os.path.join(out, 'viz')} (demo.png, kmeans.png, pca.png); compare them with make demo's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
