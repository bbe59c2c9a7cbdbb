"""Shared set-up of the benchmarks: BLAS threads and kernels before NumPy loads, the
machine's matmul peak measured in the same run, interleaved timing with medians.

Import this module before NumPy (`from _setup import configure; configure(threads)`).

OpenBLAS kernels: OpenBLAS picks its kernels by CPU model, or takes them from the
environment variable OPENBLAS_CORETYPE. Its Haswell (AVX2) kernels run float32 matmul
at about half the speed of its SkylakeX (AVX-512) kernels on an AVX-512 core (measured
on an AMD Zen 5 development machine: 101 against 185 GFLOP/s, one thread, n = 2048),
while torch's oneDNN kernels use AVX-512 wherever the CPU has it. `--blas-core env`
(the default) keeps the environment's or OpenBLAS's own choice; `--blas-core auto`
selects SkylakeX when the CPU reports AVX-512 (avx512f/bw/dq/vl); any other value is
passed on as OPENBLAS_CORETYPE. Every benchmark prints the kernel set in use and the
matmul peak measured in the same run.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
import time

AVX512 = ("avx512f", "avx512bw", "avx512dq", "avx512vl")


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def add_arguments(parser, threads=2):
    parser.add_argument("--threads", type=int, default=threads, help="BLAS and torch threads for both")
    parser.add_argument("--blas-core", default="env",
                        help="OpenBLAS kernel set: env (keep OPENBLAS_CORETYPE or OpenBLAS's own choice), "
                             "auto (SkylakeX on AVX-512 CPUs) or a name for OPENBLAS_CORETYPE")


def configure(threads, blas_core="env"):
    """Set the thread and kernel environment; must run before NumPy is imported."""
    if "numpy" in sys.modules:
        raise RuntimeError("benchmarks/_setup.configure must run before NumPy is imported")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if blas_core == "auto":
        if set(AVX512) <= _cpu_flags():
            os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif blas_core != "env":
        os.environ["OPENBLAS_CORETYPE"] = blas_core
    import torch
    torch.set_num_threads(threads)


def openblas_core():
    """The kernel set NumPy's OpenBLAS uses (e.g. 'SkylakeX'), or '?'."""
    import numpy as np
    libdir = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "?"


def matmul_peak(n=2048, repeats=7):
    """float32 GFLOP/s of an n x n matmul at its best of `repeats` runs (after a warm-up):
    (numpy, torch), measured interleaved. The best run, not the median: a peak is what the
    machine reaches, and on a shared machine the other runs are slowed by the neighbours."""
    import numpy as np
    import torch
    a = np.random.default_rng(0).standard_normal((2, n, n), dtype=np.float32)
    ta = torch.from_numpy(a)
    runs = {"numpy": lambda: a[0] @ a[1], "torch": lambda: ta[0] @ ta[1]}
    return {k: 2 * n ** 3 / v["wall"][1] / 1e9 for k, v in timed(runs, repeats).items()}


def timed(runs, repeats):
    """{name: {"wall": (median, min, max), "cpu": median}} in seconds; the runs alternate
    (after one warm-up each), so background load hits all alike. "cpu" is this
    process's CPU time, the steadier measure on a shared machine with one thread."""
    import numpy as np
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {k: {"wall": (float(np.median(wall[k])), min(wall[k]), max(wall[k])), "cpu": float(np.median(cpu[k]))}
            for k in runs}


def ratio_line(t, a="numpy", b="torch", target=1.0):
    """'ratio a / b: wall median x (min/min y), cpu z (target <= t)'."""
    wa, wb = t[a]["wall"], t[b]["wall"]
    return (f"ratio {a} / {b}: wall {wa[0] / wb[0]:.2f} (min/min {wa[1] / wb[1]:.2f}), "
            f"cpu {t[a]['cpu'] / t[b]['cpu']:.2f} (target <= {target})")


def header(threads):
    """One line: versions, threads, BLAS kernels and the measured matmul peaks."""
    import numpy as np
    import torch
    peak = matmul_peak()
    return (f"numpy {np.__version__} (OpenBLAS {openblas_core()} kernels), torch {torch.__version__}; "
            f"threads {threads}; matmul peak float32 n=2048 (best of 7): numpy {peak['numpy']:.0f}, "
            f"torch {peak['torch']:.0f} GFLOP/s"), peak


def cnn_forward_flops(model):
    """FLOPs of the products of one image's forward pass through a gradscope CNN (2 per
    multiply-add): dense, depthwise and 1x1 convolutions and affine layers."""
    total = 0
    for step, out in zip(model.steps, model._shapes):  # _shapes: each step's output shape
        layer, kind = step.layer, step.layer["type"]
        pixels = out[1] * out[2] if len(out) == 3 else 0
        if kind == "conv":
            total += 2 * pixels * out[0] * layer["in_channels"] * layer["kernel"] ** 2
        elif kind == "pointwise_conv":
            total += 2 * pixels * out[0] * layer["in_channels"]
        elif kind == "depthwise_conv":
            total += 2 * pixels * out[0] * layer["kernel"] ** 2
        elif kind == "affine":
            total += 2 * layer["in_features"] * layer["out_features"]
    return float(total)


def profile_path(model, x, repeats=3, counter=None):
    """Each layer of a gradscope CNN as its image-gradient path runs it (a test-mode batch
    norm folded into the layer before it, residual joins adding their skip): rows
    (name, type, folded, forward s, backward s, counted s), medians of `repeats` CPU
    times, backward to the input only. counter: optional factory of an object with
    .seconds and .close(), made around each repeat (e.g. the time spent copying)."""
    import numpy as np
    from gradscope.cnn.fold import FOLDED_BN
    from gradscope.cnn.graph import JOIN, walk

    rows = []

    def layer(step, arrays, h):
        times = []
        for _ in range(repeats):
            c = counter() if counter else None
            t0 = time.process_time()
            out, cache = model._run_layer(step, arrays, h if step.kind is not FOLDED_BN else h.copy(), "test", None)
            t1 = time.process_time()
            step.kind.backward(step.layer, np.ones_like(out), cache, False)
            t2 = time.process_time()
            if c:
                c.close()
            times.append((t1 - t0, t2 - t1, c.seconds if c else 0.0))
        t = np.median(np.array(times), axis=0)
        if step.kind is FOLDED_BN:  # runs as part of the layer before
            name, kind, _, *t0 = rows.pop()
            rows.append((f"{name}+{step.name}", kind, True, *(np.array(t0) + t)))
        else:
            rows.append((step.name, step.layer["type"], False, *t))
        return out, None

    walk(model._fold.items(model._step_arrays, model.dtype, 0, len(model.steps) - 1), x, layer, JOIN.forward)
    return rows


def print_image_gradient_times(t, flops, peak):
    """Per side of `timed` results: median, min, max, CPU ms and GFLOP/s against its matmul peak."""
    for k, r in t.items():
        (med, lo, hi), g = r["wall"], flops / r["wall"][0] / 1e9
        print(f"{k:6s} forward+backward to image: median {med * 1e3:7.1f} ms (min {lo * 1e3:.1f}, max "
              f"{hi * 1e3:.1f}; cpu {r['cpu'] * 1e3:.1f}); {g:4.0f} GFLOP/s = {g / peak[k]:.2f} x its matmul peak")


def frozen_torch_twin(model):
    """The torch twin of a gradscope CNN in eval mode with frozen weights (only the input
    gets gradients, as in the NumPy image-gradient path)."""
    from gradscope.cnn.torch_module import params_to_torch

    module = params_to_torch(model.config, model.params, model.buffers).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
