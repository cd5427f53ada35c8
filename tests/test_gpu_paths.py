"""The GPU paths, tested on the CPU where they can run there (issue 44 sec. 4), and bench.py --gpu-check's pieces.

- train.py --compile, one step of each method. torch.compile's default backend (inductor) generates and builds C++
  for every graph on the CPU, far too slow on this project's 2-core machines for the suite. So the steps compile
  with backend="aot_eager": TorchDynamo traces the forward and AOTAutograd the backward, the two stages that refuse
  code they cannot capture; inductor's code generation is what bench.py --gpu-check's compile rows run on the GPU.
- FSDP2 with the bf16 MixedPrecisionPolicy (train.make_model, --precision bf16) on gloo: bf16 compute copies of fp32
  master weights, gradients reduced in fp32, the checkpoint fp32.
- bench.py --gpu-check: the one-line refusal without CUDA, the attention-kernel classifier on the profiler's names,
  the table and the docs section on made-up rows, rows that fail or do not fit the budget, and the check's rows
  run on the CPU (eager in this process, FSDP2 over its own world of one gloo process in a subprocess).
- On a machine with CUDA: the whole check at the tiny preset.
"""
import argparse
import json
import os
import subprocess
import sys
from contextlib import nullcontext

import pytest
import torch

import bench
import bench_gpu
import evaluate
import methods
import train
import vit
from helpers import SMALL, argv, metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# ----------------------------------------------------------------------------
# train.py --compile


@pytest.mark.slow
@pytest.mark.parametrize("method", list(methods.METHODS))
def test_compile_trains_one_step(tmp_path, monkeypatch, method):
    compiled = []
    real = torch.compile

    def aot_eager(model, **kwargs):   # see the module docstring: the tracing stages without inductor's C++ build
        compiled.append(model)
        return real(model, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch, "compile", aot_eager)
    torch._dynamo.reset()
    out = tmp_path / method
    train.main(argv(method, out, "--compile", steps=1))
    assert len(compiled) == 1 and isinstance(compiled[0], methods.MODELS[method])
    [row] = metrics(out)
    assert row["step"] == 1 and torch.isfinite(torch.tensor(row["loss"]))
    # the checkpoint is the raw model's (no torch.compile "_orig_mod." prefix) and loads into a plain one
    model, cfg, meta = methods.load_checkpoint(str(out / "ckpt.pt"))
    assert meta["step"] == 1 and cfg.depth == 1
    torch.manual_seed(0)
    fresh = dict(methods.MODELS[method](cfg).named_parameters())
    assert any(not torch.equal(p, fresh[n]) for n, p in model.named_parameters())   # the compiled step trained it
    torch._dynamo.reset()


# ----------------------------------------------------------------------------
# FSDP2 with the bf16 mixed-precision policy, on gloo


def mixed_precision_worker(rank, world_size, result):
    """train.make_model's FSDP2 model with bf16 on: the dtypes the blocks compute in, the parameters' dtype, the
    gradients' dtype after a step; rank 0 saves them."""
    cfg = train.build_config("siammae", "tiny", SMALL["siammae"])
    raw = bench_gpu.fsdp_model("siammae", cfg, 2, torch.device("cpu"))
    seen = []
    block = next(m for m in raw.modules() if isinstance(m, vit.Block))
    block.attn.q.register_forward_hook(lambda mod, args, out: seen.append((mod.weight.dtype, out.dtype)))
    batch = bench.make_batch("siammae", cfg, 2, torch.device("cpu"), seed=rank)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = raw(batch)["loss"]
    loss.backward()
    grads = {p.grad.dtype for p in raw.parameters() if p.grad is not None}
    params = {p.dtype for p in raw.parameters()}
    if rank == 0:
        torch.save({"seen": [(str(a), str(b)) for a, b in seen], "grads": sorted(map(str, grads)),
                    "params": sorted(map(str, params)), "loss": loss.item()}, result)


def test_fsdp2_mixed_precision_computes_in_bf16_and_keeps_fp32_masters(launch, tmp_path):
    result = tmp_path / "result.pt"
    launch(mixed_precision_worker, 2, str(result))
    r = torch.load(result, weights_only=True)
    assert r["seen"] and all(w == "torch.bfloat16" and o == "torch.bfloat16" for w, o in r["seen"]), r["seen"]
    assert r["params"] == ["torch.float32"] and r["grads"] == ["torch.float32"]   # reduced and kept in fp32
    assert torch.isfinite(torch.tensor(r["loss"]))


def train_worker(rank, world_size, args):
    train.main(args)


def test_fsdp2_bf16_run_matches_one_bf16_process(launch, tmp_path):
    """--dist fsdp --precision bf16 on 2 processes against --precision bf16 in one: the same first loss up to bf16
    rounding (FSDP2 casts the weights to bf16 where one process's autocast keeps some ops in fp32) and at every
    step after, and fp32 parameters that moved alike. AdamW's first steps move each weight by about +-lr whatever
    its gradient's size, so a gradient that bf16 rounding flips moves one weight 2 lr apart: the parameters are
    compared on average, not element by element."""
    one, two = tmp_path / "one", tmp_path / "two"
    train.main(argv("siammae", one, "--precision", "bf16", steps=2))
    launch(train_worker, 2, argv("siammae", two, "--dist", "fsdp", "--precision", "bf16", steps=2))
    l1, l2 = [r["loss"] for r in metrics(one)], [r["loss"] for r in metrics(two)]
    assert len(l1) == len(l2) == 2 and all(abs(a - b) < 1e-2 * abs(a) for a, b in zip(l1, l2)), (l1, l2)
    p1, p2 = (torch.load(out / "ckpt.pt", weights_only=True)["model"] for out in (one, two))
    assert p1.keys() == p2.keys() and all(v.dtype == torch.float32 for v in p2.values() if v.is_floating_point())
    torch.manual_seed(0)
    init = dict(methods.MODELS["siammae"](train.build_config("siammae", "tiny", SMALL["siammae"])).state_dict())
    # both runs moved the weights alike: far closer to each other than to the init, over all of them (a single
    # tensor can move by noise alone: the keys' bias has no gradient but rounding, softmax ignores it)
    flat = {name: torch.cat([p[k].flatten() for k in sorted(p1) if p1[k].is_floating_point()])
            for name, p in (("one", p1), ("two", p2), ("init", init))}
    assert (flat["one"] - flat["two"]).abs().mean() < 0.25 * (flat["one"] - flat["init"]).abs().mean()


# ----------------------------------------------------------------------------
# bench.py --gpu-check: refusal, kernel names, table, docs section


def test_gpu_check_refuses_without_cuda_in_one_line(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "bench"
    with pytest.raises(SystemExit) as e:
        bench.main(["--gpu-check", "--out", str(out)])
    said = capfd.readouterr()
    assert e.value.code == 2 and said.out == ""
    assert said.err == "error: --gpu-check needs a CUDA device; this machine has none\n"
    assert not out.exists()   # before any work


@pytest.mark.parametrize("extra,message", [(["--budget", "0"], "--budget must be >= 1 second; got 0"),
                                           (["--doc", "{tmp}"], "must be a Markdown file in a writable folder")])
def test_gpu_check_bad_options_are_one_line_before_any_work(tmp_path, monkeypatch, capsys, extra, message):
    """Checked where CUDA is (made believed here): the error ends the command before the device is touched."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench_gpu, "gpu_check", lambda *a, **k: pytest.fail("the check ran"))
    with pytest.raises(SystemExit) as e:
        bench.main(["--gpu-check", "--out", str(tmp_path / "out"), *(x.format(tmp=tmp_path) for x in extra)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err.splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# names as torch.profiler reports them: aten ops (CPU side) and CUDA kernels
FLASH_KERNEL = ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, "
                "cutlass::bfloat16_t, Flash_kernel_traits<64, 128, 128, 4, cutlass::bfloat16_t> >, false, false, "
                "false, false, false, true, false, false>(pytorch_flash::Flash_fwd_params)")
MEM_EFF_KERNEL = ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<cutlass::"
                  "bfloat16_t, cutlass::arch::Sm80, true, 64, 64, 64, true, true>::Params)")
CUDNN_KERNEL = "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64_4x1x1_kernel0_0"


@pytest.mark.parametrize("ops,kernels,expected", [
    ({"aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_flash_attention_backward",
      "aten::scaled_dot_product_attention", "aten::mm"}, {FLASH_KERNEL}, "flash"),
    ({"aten::_scaled_dot_product_efficient_attention"}, {MEM_EFF_KERNEL}, "memory-efficient"),
    ({"aten::_scaled_dot_product_cudnn_attention_backward"}, set(), "cudnn"),
    ({"aten::_scaled_dot_product_attention_math", "aten::bmm", "aten::_softmax"}, set(), "math"),
    ({"aten::_scaled_dot_product_flash_attention_for_cpu"}, set(), "flash (CPU)"),
    ({"aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_attention_math"}, set(),
     "flash, math"),
    # no attention op among the ops (a compiled graph's own kernels): the kernel names say
    ({"aten::mm"}, {FLASH_KERNEL, "ampere_bf16_s16816gemm_bf16_128x128_ldg8_f2f_stages_64x3_tn"}, "flash"),
    ({"aten::mm"}, {MEM_EFF_KERNEL}, "memory-efficient"),
    ({"aten::mm"}, {CUDNN_KERNEL}, "cudnn"),                      # cudnn's kernel says "flash" too
    ({"aten::mm", "aten::_softmax"}, {"triton_poi_fused_add_0", "sm90_xmma_gemm_bf16bf16"}, "none seen"),
])
def test_attention_kernels_from_profiler_names(ops, kernels, expected):
    assert bench_gpu.attention_kernels(ops, kernels) == expected


def test_an_autograd_node_name_is_not_an_attention_op():
    assert bench_gpu.attention_family("ScaledDotProductFlashAttentionForCpuBackward0") is None
    assert bench_gpu.attention_family("aten::scaled_dot_product_attention") is None   # the dispatcher, not a kernel


@pytest.mark.parametrize("backend,expected", [(None, "flash (CPU)"), ("MATH", "math")])
def test_profile_attention_names_the_kernel_that_ran(backend, expected):
    """The profiler of this torch reports the op names the classifier reads: SDPA's CPU kernel, and the math
    backend when it is forced."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    attn = vit.Attention(16, heads=2)
    x = torch.randn(2, 5, 16)

    def step():
        attn(x).square().mean().backward()

    with sdpa_kernel(getattr(SDPBackend, backend)) if backend else nullcontext():
        assert bench_gpu.profile_attention(step, torch.device("cpu")) == expected


ROWS = [{"row": "rvm eager", "kind": "eager", "batch": 32, "ms_per_step": 123.456, "tokens_per_s": 123456.7,
         "mfu": 0.4123, "peak_mem_GiB": 12.345, "attention": "flash", "first_step_s": 1.25, "seconds": 9.6,
         "status": "ok"},
        {"row": "evaluate.py probes", "kind": "commands", "status": "failed (exit 1): error: a | b", "seconds": 3.2},
        {"row": "sigma compile", "kind": "compile", "status": "skipped: it would end past the 420 s budget"}]
META = {"date": "2026-12-07", "command": "python bench.py --gpu-check", "device": "NVIDIA H100 80GB HBM3 (sm 9.0)",
        "torch": "torch 2.11.0+cu128, CUDA 12.8", "preset": "small", "batch": 32, "steps": 30, "warmup": 3,
        "peak_tflops": 812.34, "peak_n": 8192, "planned": 3, "budget_s": 420}


def test_gpu_table_formats_rows_and_dashes_what_a_row_lacks():
    lines = bench_gpu.gpu_table(ROWS).splitlines()
    assert len(lines) == 2 + len(ROWS) and lines[0].startswith("| row | batch | ms/step | x eager | tokens/s | MFU |")
    assert lines[2] == "| rvm eager | 32 | 123.5 | - | 123,457 | 41.2% | 12.35 | flash | 1.2 | 10 | ok |"
    # a failed command's message keeps the table's columns: its "|" is not a cell boundary
    assert lines[3] == "| evaluate.py probes | - | - | - | - | - | - | - | - | 3 | failed (exit 1): error: a / b |"
    assert all(line.count("|") == len(bench_gpu.GPU_COLUMNS) + 1 for line in lines)


def test_gpu_section_names_date_command_device_peak_and_progress():
    done = bench_gpu.gpu_section(ROWS, META, ["DAVIS fixture: skipped, davis.py is not in this checkout"], done=True)
    head = done.splitlines()[0]
    assert head == "## GPU check, 2026-12-07"
    for text in ("`python bench.py --gpu-check`", "NVIDIA H100 80GB HBM3", "torch 2.11.0+cu128", "812.3 TFLOP/s",
                 "8192 x 8192", "30 timed steps", "- DAVIS fixture: skipped"):
        assert text in done
    assert "In progress" not in done
    assert "**In progress**: 3 of 5 rows so far." in bench_gpu.gpu_section(ROWS, {**META, "planned": 5}, [], done=False)


DOC = "# Performance\n\nIntro.\n\n## 2026-12-04, CPU\n\n| a |\n\n## 2026-12-03\n\nold\n"


def test_the_gpu_section_goes_before_the_dated_sections_and_is_replaced_in_place():
    first = bench_gpu.replace_section(DOC, "## GPU check, 2026-12-07\n\nfirst table\n")
    assert first == ("# Performance\n\nIntro.\n\n## GPU check, 2026-12-07\n\nfirst table\n\n"
                     "## 2026-12-04, CPU\n\n| a |\n\n## 2026-12-03\n\nold\n")
    second = bench_gpu.replace_section(first, "## GPU check, 2026-12-09\n\nsecond table\n")
    assert second == first.replace("2026-12-07\n\nfirst", "2026-12-09\n\nsecond")
    assert bench_gpu.replace_section(second, "## GPU check, 2026-12-09\n\nsecond table\n") == second
    # a file with no section after it, and an empty one
    last = bench_gpu.replace_section("# P\n\ntext\n", "## GPU check, x\n\nt\n")
    assert last == "# P\n\ntext\n\n## GPU check, x\n\nt\n"
    assert bench_gpu.replace_section(last, "## GPU check, y\n\nu\n") == "# P\n\ntext\n\n## GPU check, y\n\nu\n"
    assert bench_gpu.replace_section("", "## GPU check, x\n") == "## GPU check, x\n"


def test_the_project_doc_has_one_gpu_section():
    with open(os.path.join(ROOT, "docs", "performance.md")) as f:
        text = f.read()
    assert sum(line.startswith(bench_gpu.GPU_SECTION) for line in text.splitlines()) == 1
    assert "python bench.py --gpu-check" in text


def test_the_command_rows_parse_under_their_tools(tmp_path):
    """train.py and evaluate.py accept the check's command lines (a renamed flag fails here, not on the GPU); the
    DAVIS row is there with davis.py and says why it is not without it."""
    plan, note = bench_gpu.command_plan("small", "cuda", str(tmp_path))
    assert note is None and [len(cmds) for _, _, cmds, _ in plan] == [1, 1, 2]
    [train_cmd], [eval_cmd], [fixture_cmd, davis_cmd] = (cmds for _, _, cmds, _ in plan)
    assert train.get_parser().parse_args(train_cmd[2:]).preset == "small"
    assert evaluate.get_parser().parse_args(eval_cmd[2:]).device == "cuda"
    assert evaluate.get_parser().parse_args(davis_cmd[2:]).davis == fixture_cmd[-1]
    assert eval_cmd[eval_cmd.index("--ckpt") + 1] == os.path.join(train_cmd[train_cmd.index("--out") + 1], "ckpt.pt")
    bench_root = bench.ROOT
    try:
        bench.ROOT = str(tmp_path)
        plan, note = bench_gpu.command_plan("small", "cuda", str(tmp_path))
    finally:
        bench.ROOT = bench_root
    assert len(plan) == 2 and note == "DAVIS fixture: skipped, davis.py is not in this checkout"


# ----------------------------------------------------------------------------
# the check's rows, run on the CPU


def one_block(name):
    return train.build_config(name, "tiny", SMALL[name])


def check_args(tmp_path, **kw):
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "performance.md").write_text(DOC)
    return argparse.Namespace(**{"preset": "tiny", "batch_size": 2, "steps": 1, "warmup": 0,
                                 "out": str(tmp_path / "out"), "doc": str(tmp_path / "performance.md"),
                                 "budget": 420, **kw})


@pytest.fixture
def fake_peak(monkeypatch):
    """A made-up matmul peak: a bf16 matmul on a CPU without bf16 units is slow to time."""
    monkeypatch.setattr(bench, "matmul_peak", lambda device, dtype: 1e12)


def test_gpu_check_eager_row_on_the_cpu_writes_json_and_docs(tmp_path, capsys, fake_peak):
    args = check_args(tmp_path)
    rows = bench_gpu.gpu_check(args, torch.device("cpu"), str(tmp_path), ["--gpu-check"], names=["siammae"],
                               kinds=("eager",), configs={"siammae": one_block("siammae")})
    said = capsys.readouterr().out
    [row] = rows
    assert row["status"] == "ok" and row["attention"] == "flash (CPU)" and row["batch"] == 2
    assert row["ms_per_step"] > 0 and row["tokens_per_s"] > 0 and row["mfu"] > 0 and row["peak_mem_GiB"] is None
    assert "[1/1] siammae eager | elapsed 0m00s, ETA 0m20s" in said   # the progress line, with its ETA
    saved = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert saved["done"] and saved["rows"] == rows and saved["preset"] == "tiny"
    doc = (tmp_path / "performance.md").read_text()
    assert doc.index("## GPU check, ") < doc.index("## 2026-12-04") and "| siammae eager | 2 |" in doc
    assert (tmp_path / "out" / "gpu_check.md").read_text() in doc


def test_a_failing_row_is_reported_and_the_check_goes_on(tmp_path, monkeypatch, capsys, fake_peak):
    def fail_rvm(name, mode, *args):
        if name == "rvm":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore lines")
        return {"ms_per_step": {"eager": 2.0, "compile": 1.0}[mode], "mfu": 0.5, "attention": "flash"}

    monkeypatch.setattr(bench_gpu, "check_train_row", fail_rvm)
    rows = bench_gpu.gpu_check(check_args(tmp_path), torch.device("cpu"), str(tmp_path), [], names=["rvm", "sigma"],
                               kinds=("eager", "compile"))
    assert [r["status"] for r in rows] == ["failed: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                                           "ok", "failed: OutOfMemoryError: CUDA out of memory. Tried to allocate "
                                           "2.00 GiB", "ok"]
    assert rows[3]["speedup"] == 2.0 and "speedup" not in rows[1]   # sigma compiled against sigma eager
    assert "OutOfMemoryError" in capsys.readouterr().err   # the traceback, for whoever reads the log


def test_rows_that_do_not_fit_the_budget_are_skipped_and_say_so(tmp_path, monkeypatch, fake_peak):
    monkeypatch.setattr(bench_gpu, "check_train_row", lambda *a: pytest.fail("a row ran past the budget"))
    rows = bench_gpu.gpu_check(check_args(tmp_path, budget=5), torch.device("cpu"), str(tmp_path), [],
                               names=["rvm"], kinds=("eager", "compile"))
    assert [r["status"] for r in rows] == ["skipped: it would end past the 5 s budget"] * 2
    assert "| rvm compile | - |" in (tmp_path / "performance.md").read_text()


@pytest.mark.slow
def test_gpu_check_fsdp2_row_makes_its_own_one_process_group(tmp_path):
    """The FSDP2 row as the check runs it: in a process with no group, it makes a world of one (gloo here), trains
    through train.make_model's FSDP2 with bf16 mixed precision, and leaves no group behind. A subprocess, as the
    parent of the forked distributed tests must never make a group (DISTRIBUTED.md); os._exit after the last write
    (gloo's exit race, DISTRIBUTED.md gotcha 1)."""
    code = f"""
import json, os, sys, torch
import bench, bench_gpu, torch.distributed as dist
sys.path.insert(0, {os.path.join(ROOT, 'tests')!r})
import test_gpu_paths as t
import pathlib
torch.set_num_threads(1)
bench.matmul_peak = lambda device, dtype: 1e12
rows = bench_gpu.gpu_check(t.check_args(pathlib.Path({str(tmp_path)!r})), torch.device("cpu"), {str(tmp_path)!r}, [],
                           names=["sigma"], kinds=("fsdp2",), configs={{"sigma": t.one_block("sigma")}})
print(json.dumps({{"rows": rows, "group_left": dist.is_initialized()}}))
sys.stdout.flush()
os._exit(0)
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    [row] = result["rows"]
    assert row["status"] == "ok" and row["row"] == "sigma FSDP2 (1 process)" and row["ms_per_step"] > 0, row
    assert not result["group_left"]


# ----------------------------------------------------------------------------
# on a machine with CUDA


@needs_cuda
@pytest.mark.slow
def test_gpu_check_runs_every_row_on_cuda(tmp_path):
    """The whole check at the tiny preset, 2 steps: every row runs, SDPA runs a fused kernel."""
    out, doc = tmp_path / "out", tmp_path / "performance.md"
    res = subprocess.run([sys.executable, "bench.py", "--gpu-check", "--preset", "tiny", "--steps", "2", "--warmup",
                          "0", "--batch-size", "4", "--out", str(out), "--doc", str(doc), "--budget", "3000"],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = json.loads((out / "gpu_check.json").read_text())["rows"]
    assert all(r["status"] == "ok" for r in rows), [(r["row"], r["status"]) for r in rows]
    kernels = [r["attention"] for r in rows if "attention" in r]
    assert kernels and not any("math" in k or k == "none seen" for k in kernels), kernels   # a fused kernel ran
    assert "## GPU check, " in doc.read_text()


@needs_cuda
@pytest.mark.parametrize("method", list(methods.METHODS))
def test_one_bf16_step_on_cuda(tmp_path, method):
    out = tmp_path / method
    train.main(argv(method, out, "--device", "cuda", "--workers", "0", steps=2))
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2] and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
