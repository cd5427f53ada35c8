"""Shared test helpers: run a function in forked processes joined by a gloo group.

Distributed tests on a CPU-only machine, as measured in DISTRIBUTED.md: fork
(0.2-0.5 s per launch, spawn costs 2-3 s), one thread per worker (forked
workers that use more hang), a file:// rendezvous in a fresh temporary folder
(no ports to race for), 60 s timeouts everywhere, and os._exit(0) at the end
(a gloo thread can abort a normally exiting interpreter).
"""
import os
import sys
import time
from datetime import timedelta

import pytest
import torch
import torch._dynamo  # noqa: F401  imported here so forked workers inherit it (DDP would import it: ~1 s each)
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT_S = 60


def _worker(rank, fn, world_size, init_file, args):
    torch.set_num_threads(1)   # first: a forked child of a multi-threaded parent hangs with more
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=TIMEOUT_S))
    fn(rank, world_size, *args)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.fixture
def launch(tmp_path):
    """launch(fn, world_size, *args) runs fn(rank, world_size, *args) in
    `world_size` forked processes with a gloo process group and the RANK /
    WORLD_SIZE / LOCAL_RANK variables torchrun would set; fn must be a
    module-level function. Raises if a worker fails or the launch takes longer
    than 2 x TIMEOUT_S."""
    count = [0]

    def run(fn, world_size, *args):
        count[0] += 1
        init_file = tmp_path / f"rendezvous-{count[0]}"
        ctx = mp.start_processes(_worker, args=(fn, world_size, str(init_file), args), nprocs=world_size,
                                 join=False, start_method="fork")
        deadline = time.time() + 2 * TIMEOUT_S
        while not ctx.join(timeout=1):
            if time.time() > deadline:
                for p in ctx.processes:
                    p.kill()
                raise TimeoutError(f"{fn.__name__} did not finish in {2 * TIMEOUT_S} s")

    return run


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tests on tiny tensors (pytestmark = usefixtures)."""
    # these tests run many ops on tiny tensors; on a busy 2-core machine OpenMP's
    # thread hand-offs cost more than the work (a 64x64 pad took 20 ms with 2 threads)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
