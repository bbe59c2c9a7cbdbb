"""SmoothGrad and integrated gradients on the shipped CNN: gradscope's NumPy engine
(gradscope.methods) against captum on the same network in torch (the same weights),
in one run, interleaved, medians reported.

    python benchmarks/attribution.py [--batch 16] [--samples 25] [--steps 32] [--threads 2]

Both sides evaluate the same number of images per call (--chunk) and return the raw
attributions; the NumPy side also forms its maps (a negligible cost). Without captum
installed (`pip install captum --no-deps`) the torch side is the equivalent plain
torch loop (noise or path points in chunks, autograd to the input), and says so.
"""
import argparse
import sys

import _setup


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--samples", type=int, default=25, help="SmoothGrad noisy copies per image")
    p.add_argument("--steps", type=int, default=32, help="IG path points")
    p.add_argument("--chunk", type=int, default=64, help="images per model call, both sides")
    p.add_argument("--repeats", type=int, default=3)
    _setup.add_arguments(p)
    return p.parse_args()


args = parse_args()
_setup.configure(args.threads, args.blas_core)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradscope.cnn import load_pretrained  # noqa: E402
from gradscope.methods import integrated_gradients, smoothgrad  # noqa: E402

try:
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
except ImportError:  # the plain torch loop stands in
    IntegratedGradients = NoiseTunnel = Saliency = None


def torch_grad_sum(module, inputs, targets, chunk):
    """Sum over rows of d score[target] / d input, `chunk` rows per call (the loop captum runs)."""
    grads = []
    for a in range(0, len(inputs), chunk):
        x = inputs[a:a + chunk].clone().requires_grad_(True)
        module(x).gather(1, targets[a:a + chunk, None]).sum().backward()
        grads.append(x.grad)
    return torch.cat(grads)


def torch_runs(module, x, classes, std, base):
    """(smoothgrad, ig) callables on the torch side: captum when installed."""
    xt, ct = torch.from_numpy(x), torch.from_numpy(classes)
    n, s, k = len(x), args.samples, args.steps
    if NoiseTunnel is not None:
        nt, ig = NoiseTunnel(Saliency(module)), IntegratedGradients(module)
        stdev = float(std.mean())  # captum takes one noise std for all channels
        return (lambda: nt.attribute(xt, nt_type="smoothgrad", nt_samples=s, nt_samples_batch_size=args.chunk // n,
                                     stdevs=stdev, target=ct, abs=False),
                lambda: ig.attribute(xt, torch.from_numpy(base), target=ct, n_steps=k,
                                     method="riemann_middle", internal_batch_size=args.chunk))

    def sg():
        noisy = xt.repeat_interleave(s, 0) + torch.from_numpy(std) * torch.randn((n * s,) + xt.shape[1:])
        return torch_grad_sum(module, noisy, ct.repeat_interleave(s), args.chunk).reshape(n, s, *xt.shape[1:]).mean(1)

    def ig_loop():
        alphas = (torch.arange(k) + 0.5) / k
        b = torch.from_numpy(base)
        path = b[:, None] + alphas[None, :, None, None, None] * (xt - b)[:, None]
        g = torch_grad_sum(module, path.reshape(n * k, *xt.shape[1:]), ct.repeat_interleave(k), args.chunk)
        return (xt - b) * g.reshape(n, k, *xt.shape[1:]).mean(1)

    return sg, ig_loop


def main():
    model = load_pretrained()
    module = _setup.frozen_torch_twin(model)
    rng = np.random.default_rng(0)
    S = model.input_size
    x = model.preprocess(rng.integers(0, 256, (args.batch, S, S, 3), dtype=np.uint8)).astype(np.float32)
    classes = rng.integers(0, model.num_classes, args.batch)
    lo, hi = model.pixel_bounds()
    std = (0.15 * (hi - lo)).astype(np.float32)
    base = np.broadcast_to(lo, x.shape).astype(np.float32)
    sg_t, ig_t = torch_runs(module, x, classes, std, base)
    line, peak = _setup.header(args.threads)
    side = "captum " + __import__("captum").__version__ if NoiseTunnel is not None else "plain torch loop (no captum)"
    print(f"{line}\nshipped CNN, batch {args.batch}; torch side: {side}; {args.repeats} interleaved repeats")
    images = {"smoothgrad": args.batch * args.samples, "integrated_gradients": args.batch * args.steps}
    fwd_flops = _setup.cnn_forward_flops(model)
    cases = {"smoothgrad": (lambda: smoothgrad(model, x, classes, n_samples=args.samples, sigma=0.15,
                                               chunk=args.chunk), sg_t),
             "integrated_gradients": (lambda: integrated_gradients(model, x, classes, points=args.steps,
                                                                   chunk=args.chunk), ig_t)}
    for name, (ours, theirs) in cases.items():
        t = _setup.timed({"numpy": ours, "torch": theirs}, args.repeats)
        g = 2 * fwd_flops * images[name] / t["numpy"]["wall"][0] / 1e9
        print(f"{name:21s} ({images[name]} images): numpy {t['numpy']['wall'][0]:6.2f} s ({g:4.0f} GFLOP/s = "
              f"{g / peak['numpy']:.2f} x peak), torch {t['torch']['wall'][0]:6.2f} s; "
              f"{_setup.ratio_line(t, target=1.5)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
