"""The shapes probes of the claims (evaluate.py's) on the world each checkpoint trained on, beside its random-init
twin and raw pixels: the quick look behind the claims' choice of world (docs/experiments.md, "The pattern world").

    python scripts/probe_world.py --ckpt runs/sigma/ckpt.pt [--ckpt ...] [--probe kind --probe J16 --probe video_kind]

Probes (held-out videos of the checkpoint's --data shapes world; the noise square has none of these):
    kind        evaluate.token_kinds: a linear probe of each token's class, balanced recall (chance 1/4)
    J16         evaluate.j16: label propagation J on 24 videos of 16 frames
    video_kind  evaluate.video_kinds: a linear probe of the one shape's kind from pooled features (chance 1/3)
"""
import argparse
import os
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import data  # noqa: E402
import evaluate  # noqa: E402
import methods  # noqa: E402

PROBES = {"kind": evaluate.token_kinds, "J16": evaluate.j16, "video_kind": evaluate.video_kinds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", action="append", required=True, help="a train.py checkpoint of a shapes world")
    ap.add_argument("--probe", action="append", choices=list(PROBES), help="default: kind and J16")
    ap.add_argument("--twin-seed", type=int, default=0, help="init seed of the random-init twins")
    args = ap.parse_args(argv)
    probes = args.probe or ["kind", "J16"]
    print("| features | world | " + " | ".join(probes) + " |\n|---|---|" + "---|" * len(probes), flush=True)
    for path in args.ckpt:
        try:
            model, cfg, meta = methods.load_checkpoint(path)
            kind, world = data.world_spec(meta.get("data", {}).get("spec", ""), cfg.img_size)
        except (FileNotFoundError, ValueError) as e:
            ap.error(str(e))
        if kind != "shapes":
            ap.error(f"{path} trained on {kind!r}; these probes need a shapes world")
        twin = evaluate.random_init(meta["method"], cfg, args.twin_seed)
        for name, features in ((path, model), (f"random-init twin, seed {args.twin_seed}", twin),
                               ("raw pixels", evaluate.RawPixels(cfg.patch))):
            t0 = time.perf_counter()
            values = [PROBES[p](features, cfg, world) for p in probes]
            print(f"| {name} | {meta['data']['spec']} | " + " | ".join(f"{v:.3f}" for v in values)
                  + f" |   ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
