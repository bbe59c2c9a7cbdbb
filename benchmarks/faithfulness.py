"""Faithfulness table: RISE deletion/insertion AUC (and, where asked, the pointing game and
the model-randomisation check) of gradscope's attribution methods, random maps, and
captum's methods on the same weights, all scored by gradscope.methods.evaluation.

    python benchmarks/faithfulness.py --data DIR --model efficientnet_lite0 --n 25 \\
        --methods random,vanilla,smoothgrad,ig,gradcam,occlusion --captum gradcam,smoothgrad,ig --out run.jsonl [--shard 1/2]
    python benchmarks/faithfulness.py --merge run*.jsonl

DIR is a TinyImageNet directory or an ImageFolder (DIR/<wnid>/*.JPEG). --model takes any model
spec; `--model gradscope/torch/efficientnet_ref.py:torch_model` runs everything on EfficientNet-Lite0's
parity-tested torch twin (how the README's ImageNet table was made, in shards). With --captum and
EfficientNet-Lite0, captum's Saliency, NoiseTunnel(Saliency) (SmoothGrad), IntegratedGradients
and LayerGradCam run on the torch twin (the model's module, or gradscope.torch.efficientnet_ref.load_reference())
with their usual settings; their maps are reduced over channels like gradscope's
(max |.| for gradients, sum |.| for IG) and upsampled bilinearly for Grad-CAM.
Records are per image (JSONL), so a killed run resumes and shards merge.
"""
import argparse
import sys

import _setup


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="a model spec (gradscope.modelspec), e.g. efficientnet_lite0, tinyimagenet or the torch twin "
                        "gradscope/torch/efficientnet_ref.py:torch_model")
    p.add_argument("--n", type=int, default=25)
    p.add_argument("--methods", default="random,vanilla,smoothgrad,ig,gradcam,occlusion")
    p.add_argument("--captum", default="", help="captum methods: saliency,smoothgrad,ig,gradcam,gradcam_bn1 "
                   "(comma list; gradcam at gradscope's default layer, gradcam_bn1 at the twin's _bn1)")
    p.add_argument("--settings", default="{}", help='JSON {method: {setting: value}}, e.g. {"perturbation": {"iterations": 100}}')
    p.add_argument("--variants", default="{}", help='JSON {label: [method, {setting: value}]}: more rows of gradscope '
                   'methods with other settings, e.g. {"gradcam_14x14": ["gradcam", {"layer": "block10"}]}')
    p.add_argument("--sanity", action="store_true", help="also the model-randomisation check")
    p.add_argument("--out")
    p.add_argument("--order", default="", help="comma list: the order in which each image's methods run")
    p.add_argument("--shard", default="1/1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--merge", nargs="*")
    p.add_argument("--all-images", action="store_true", help="merge: each method over all its images")
    _setup.add_arguments(p)
    return p.parse_args()


args = parse_args()
_setup.configure(args.threads, args.blas_core)

import numpy as np  # noqa: E402

from gradscope.methods import faithfulness as F  # noqa: E402


def captum_methods(names, model):
    import torch
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Saliency

    from gradscope.torch.efficientnet_ref import load_reference

    net = model.module if hasattr(model, "module") else load_reference()  # the twin of the NumPy network
    t = (lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    stdev = 0.15 * 255 / 128  # SmoothGrad's 15% of the input range, in model-input units

    def sal(model, x, c, seed=0):
        return Saliency(net).attribute(t(x), target=c.tolist()).abs().amax(1).detach().numpy()

    def sg(model, x, c, seed=0):
        torch.manual_seed(seed)
        a = NoiseTunnel(Saliency(net)).attribute(t(x), nt_type="smoothgrad", nt_samples=25, stdevs=stdev,
                                                 nt_samples_batch_size=25, target=c.tolist())
        return a.abs().amax(1).detach().numpy()

    def ig(model, x, c, seed=0):
        a = IntegratedGradients(net).attribute(t(x), target=c.tolist(), n_steps=50, internal_batch_size=25)
        return a.abs().sum(1).detach().numpy()

    def gradcam_at(layer):
        def gc(model, x, c, seed=0):
            a = LayerGradCam(net, layer).attribute(t(x), target=c.tolist(), relu_attributions=True)
            return LayerAttribution.interpolate(a, x.shape[2:], "bilinear")[:, 0].detach().numpy()
        return gc

    head = net._head_act  # gradscope's default Grad-CAM layer on the twin (the NumPy network's `head`)
    table = {"saliency": sal, "smoothgrad": sg, "ig": ig, "gradcam": gradcam_at(head),
             "gradcam_bn1": gradcam_at(net._bn1)}
    return [F.MapMethod("captum_" + name, table[name]) for name in names]


def main():
    if args.merge:
        table = F.merge_records(args.merge, common=not args.all_images)
        print("\n".join(F.format_table(table)))
        return 0
    from gradscope.modelspec import load_image_model

    model = load_image_model(args.model)
    k, n = (int(v) for v in args.shard.split("/"))
    items = F.shard_items(F.folder_items(model, args.data), args.n, (k, n), seed=args.seed)
    import json
    methods = F.map_methods([m for m in args.methods.split(",") if m], json.loads(args.settings))
    for label, (name, kw) in json.loads(args.variants).items():
        methods.append(F.MapMethod(label, F.map_methods([name], {name: kw})[0].maps))
    if args.captum:
        methods += captum_methods([m for m in args.captum.split(",") if m], model)
    if args.order:
        rank = {name: i for i, name in enumerate(args.order.split(","))}
        methods.sort(key=lambda m: rank.get(m.name, len(rank)))
    sanity = F.randomized_copy(model, seed=args.seed) if args.sanity else None

    def show(done, info):
        print(f"{done}/{info['total']} {info['method']} {info['image']}", file=sys.stderr, flush=True)

    F.evaluate_images(model, items, methods, args.out, sanity_model=sanity, seed=args.seed, callback=show)
    print("\n".join(F.format_table(F.merge_records([args.out]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
