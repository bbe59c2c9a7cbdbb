"""Turn the demo's computed results into Sections: numbers, summary lines, images,
figures and tables. Nothing here optimises or writes files."""
from __future__ import annotations

import numpy as np

from gradscope.demo.section import Section, Table, Visual
from gradscope.imageio import difference_image, heatmap, overlay

__all__ = ["short_name", "classification_section", "captions_section", "saliency_section", "fooling_section",
           "classvis_section", "inversion_section", "dream_section", "training_section"]

DESCRIPTIONS = {
    "classification": "The shipped CNN (TinyImageNet-100-A) on each photo: the photo's centre crop is resized "
                      "to the model's input size (64x64 for the shipped model), shown here as the model sees it.",
    "captions": "The shipped LSTM captioner (Flickr8k) on the CNN's penultimate features: greedy decoding "
                "and beam search, each with the caption's log-probability under the model.",
    "saliency": "Gradient of the predicted class's raw score with respect to the pixels (Simonyan et al. "
                "2014), max of |gradient| over colour channels; SmoothGrad (Smilkov et al. 2017) averages "
                "the gradient over noisy copies. Maps are drawn over the photo's centre crop.",
    "fooling": "Normalised gradient ascent on a target class's score until the CNN's top class is the "
               "target (Szegedy et al. 2014). The difference image is magnified: mid-gray means unchanged.",
    "classvis": "Images synthesised from noise to maximise one class: the 2016 recipe (pixels, with L2 decay, "
                "jitter and blur as image priors; Simonyan et al. 2014, Yosinski et al. 2015) beside the "
                "library's default (Lucid's Fourier / decorrelated-colour recipe, Olah et al. 2017, with "
                "mirrors, wider scaling and colour jitter), which gives more legible images.",
    "inversion": "Reconstructions of a photo from its activations at an early and a deep layer "
                 "(Mahendran & Vedaldi 2015): early layers keep the picture, deep ones keep what matters "
                 "to the classifier.",
    "deepdream": "Gradient ascent on the squared activations of a middle layer, at several octaves "
                 "(Mordvintsev et al. 2015): the network paints what that layer sees.",
    "training": "Training curves stored with the shipped models.",
}


def short_name(name) -> str:
    """A class name's first synonym: 'tabby, tabby cat' -> 'tabby'."""
    return str(name).split(",")[0].strip()


def _section(key, title, **kw) -> Section:
    return Section(key, title, DESCRIPTIONS.get(key, ""), **kw)


def classification_section(images, inputs, topk, class_names) -> Section:
    """images: DemoImages; inputs: uint8 (N, S, S, 3) what the model sees; topk: TopK."""
    visuals = [Visual(f"input_{im.name}", inputs[i], f"{im.name} ({inputs.shape[1]}x{inputs.shape[2]})",
                      pixelated=True) for i, im in enumerate(images)]
    items, rows, summary = [], [], []
    for i, im in enumerate(images):
        top = [{"class": int(c), "name": str(class_names[c]), "prob": float(p)}
               for c, p in zip(topk.classes[i], topk.probs[i])]
        items.append({"image": im.name, "source": im.source, "top": top})
        text = ", ".join(f"{short_name(t['name'])} {t['prob']:.2f}" for t in top)
        rows.append([im.name + (f" ({im.description})" if im.description else ""),
                     "; ".join(f"{t['name']} ({t['prob']:.3f})" for t in top)])
        summary.append(f"{im.name}: {text}")
    table = Table(["photo", f"top-{topk.classes.shape[1]} (probability)"], rows, [v.name for v in visuals])
    return _section("classification", "Top-5 classification", summary=summary, numbers={"images": items},
                    visuals=visuals, tables=[table])


def captions_section(images, caps, input_names) -> Section:
    """caps: Captions; input_names: the classification section's thumbnail Visual names."""
    items = [{"image": im.name, "greedy": caps.greedy[i], "greedy_log_prob": float(caps.greedy_log_prob[i]),
              "beam": caps.beam[i], "beam_log_prob": float(caps.beam_log_prob[i])} for i, im in enumerate(images)]
    rows = [[it["image"], f"{it['greedy'] or '(empty)'}  ({it['greedy_log_prob']:.2f})",
             f"{it['beam'] or '(empty)'}  ({it['beam_log_prob']:.2f})"] for it in items]
    table = Table(["photo", "greedy (log-prob)", f"beam search, k={caps.beam_size} (log-prob)"], rows, input_names)
    summary = [f"{it['image']}: \"{it['beam']}\" (beam, log p {it['beam_log_prob']:.2f}) / \"{it['greedy']}\" "
               f"(greedy, log p {it['greedy_log_prob']:.2f})" for it in items]
    return _section("captions", "Captions", summary=summary, tables=[table],
                    numbers={"beam_size": caps.beam_size, "images": items})


def faithfulness_table(faith) -> Table:
    """One row per method: mean RISE deletion and insertion AUC over the photos, beside
    the random maps' (faith: {method: DeletionInsertionResult})."""
    rows = [[m, f"{r.deletion_auc.mean():.3f}", f"{r.random_deletion_auc.mean():.3f}", f"{r.insertion_auc.mean():.3f}",
             f"{r.random_insertion_auc.mean():.3f}"] for m, r in faith.items()]
    return Table(["method", "deletion AUC (lower)", "random", "insertion AUC (higher)", "random"], rows)


def saliency_section(images, crops, vanilla, smooth, faith=None) -> Section:
    """crops: uint8 (N, D, D, 3) display crops; vanilla, smooth: SaliencyResults; faith:
    {method: DeletionInsertionResult} for the faithfulness table (optional)."""
    visuals, summary = [], []
    for i, im in enumerate(images):
        name = short_name(vanilla.class_names[i])
        visuals += [Visual(f"saliency_{im.name}_photo", crops[i], f"{im.name}: predicted {name}"),
                    Visual(f"saliency_{im.name}_vanilla", overlay(crops[i], vanilla.maps[i]), "vanilla gradient"),
                    Visual(f"saliency_{im.name}_smoothgrad", overlay(crops[i], smooth.maps[i]),
                           f"SmoothGrad ({smooth.params['n_samples']} samples)"),
                    Visual(f"saliency_{im.name}_map", heatmap(smooth.maps[i]), "SmoothGrad map", pixelated=True)]
        summary.append(f"{im.name}: map of '{name}' (score {vanilla.scores[i]:.2f}), "
                       f"{_center_share(smooth.maps[i]):.0%} of the SmoothGrad mass in the central half")
    numbers = {"vanilla": vanilla.to_dict(), "smoothgrad": smooth.to_dict(),
               "center_share": {im.name: _center_share(smooth.maps[i]) for i, im in enumerate(images)}}
    tables = []
    if faith:
        numbers["faithfulness"] = {m: {k: v for k, v in r.to_dict().items() if k != "per_image"}
                                   for m, r in faith.items()}
        tables.append(faithfulness_table(faith))
        best = max(faith, key=lambda m: faith[m].insertion_auc.mean() - faith[m].deletion_auc.mean())
        summary.append(f"faithfulness on {len(images)} photos (RISE deletion/insertion): best insertion - deletion "
                       f"gap {best}")
    return _section("saliency", "Saliency maps", summary=summary, numbers=numbers, visuals=visuals, tables=tables)


def _center_share(m) -> float:
    """Fraction of a map's mass inside the central square of half the side."""
    h, w = m.shape
    total = float(m.sum())
    inner = float(m[h // 4: h - h // 4, w // 4: w - w // 4].sum())
    return inner / total if total > 0 else 0.0


def fooling_section(image_name, result) -> Section:
    """result: FoolingResult of one image."""
    d = result.to_dict()
    it = d["images"][0]
    visuals = [Visual("fooling_original", result.original_images[0],
                      f"original: {short_name(it['original_name'])} ({it['original_prob']:.2f})", pixelated=True),
               Visual("fooling_fooled", result.images[0],
                      f"fooled: {short_name(it['final_name'])} ({it['final_prob']:.2f})", pixelated=True),
               Visual("fooling_difference", difference_image(result.images[0], result.original_images[0]),
                      f"difference magnified x{127.5 / max(it['linf'], 1):.0f} (L-inf {it['linf']:.0f}/255)",
                      pixelated=True)]
    verdict = f"fooled in {it['iterations']} steps" if it["success"] else f"not fooled after {it['iterations']} steps"
    summary = [f"{image_name}: {short_name(it['original_name'])} ({it['original_prob']:.2f}) -> target "
               f"{short_name(it['target_name'])}: {verdict}; now {short_name(it['final_name'])} "
               f"({it['final_prob']:.2f}), target prob {it['target_prob_before']:.3f} -> {it['target_prob']:.3f}, "
               f"L2 {it['l2']:.1f}, L-inf {it['linf']:.0f} (0-255 pixels)"]
    return _section("fooling", "Fooling image", summary=summary, visuals=visuals, numbers={"image": image_name, **d})


def classvis_section(result, new=None) -> Section:
    """result: ClassVisResult of the old (pixel) recipe; new: one of the default recipe, shown
    beside it (numbers under 'new_recipe')."""
    from gradscope.figures import curves_figure

    d = result.to_dict()
    visuals = [Visual(f"classvis_{i}_{int(t)}", result.images[i],
                      f"{short_name(result.class_names[i])}, old recipe (p={result.final_prob[i]:.2f})",
                      pixelated=True) for i, t in enumerate(result.targets)]
    summary = []
    if new is not None:
        recipe = new.params.get("recipe", "new")
        visuals += [Visual(f"classvis_{recipe}_{i}_{int(t)}", new.images[i],
                           f"{short_name(new.class_names[i])}, {recipe} recipe (p={new.final_prob[i]:.2f})",
                           pixelated=True) for i, t in enumerate(new.targets)]
        summary = [f"{short_name(n)} ({recipe} recipe, {new.params.get('iterations')} steps): final probability "
                   f"{p:.3f}" for n, p in zip(new.class_names, new.final_prob)]
    if len(result.prob_history):
        curves = {short_name(n): result.prob_history[:, i] for i, n in enumerate(result.class_names)}
        figure = curves_figure(curves, ylabel="target probability", title="class visualisation")
        visuals.append(Visual("classvis_curves", figure, "probability during ascent"))
    summary = [f"{short_name(c['target_name'])} (pixel recipe): final probability {c['final_prob']:.3f} "
               f"(score {c['final_score']:.2f})" for c in d["classes"]] + summary
    numbers = dict(d, new_recipe=new.to_dict()) if new is not None else d
    return _section("classvis", "Class visualisations", summary=summary, numbers=numbers, visuals=visuals)


def inversion_section(image_name, results) -> Section:
    """results: InversionResults of one image at several layers."""
    from gradscope.figures import curves_figure

    visuals = [Visual("inversion_target", results[0].target_images[0], f"{image_name} (target)", pixelated=True)]
    visuals += [Visual(f"inversion_{r.layer}", r.images[0],
                       f"from {r.layer} (distance {r.final_distance[0]:.2f})", pixelated=True) for r in results]
    if all(len(r.distance_history) for r in results):
        curves = {r.layer: r.distance_history[:, 0] for r in results}
        visuals.append(Visual("inversion_curves", curves_figure(curves, ylabel="relative feature distance",
                                                                title="feature inversion"), "distance during descent"))
    summary = [f"{image_name} from {r.layer}: relative feature distance {r.final_distance[0]:.3f}" for r in results]
    numbers = {"image": image_name, "layers": {r.layer: r.to_dict() for r in results}}
    return _section("inversion", "Feature inversion", summary=summary, numbers=numbers, visuals=visuals)


def dream_section(image_name, result) -> Section:
    """result: DreamResult of one image."""
    d = result.to_dict()
    norms = result.activation_norm[:, 0] if len(result.activation_norm) else np.zeros(0)
    visuals = [Visual("deepdream_original", result.original_images[0], f"{image_name}"),
               Visual("deepdream_dream", result.images[0], f"dreamt at {result.layer}")]
    change = f", activation RMS {norms[0]:.3f} -> {norms[-1]:.3f}" if len(norms) else ""
    summary = [f"{image_name} at {result.layer}, octaves {[list(s) for s in result.sizes]}{change}"]
    return _section("deepdream", "DeepDream", summary=summary, numbers={"image": image_name, **d}, visuals=visuals)


def training_section(cnn_history, captioner_history, notes) -> Section:
    """Per-epoch histories (lists of dicts) of the two shipped models; notes: list of
    strings about missing models or histories."""
    visuals, numbers = [], {"cnn": cnn_history, "captioner": captioner_history}
    summary = list(notes) if cnn_history or captioner_history else []
    for label, history in (("cnn", cnn_history), ("captioner", captioner_history)):
        if history:
            visuals += _history_figures(label, history)
            last = _numeric(history[-1])
            summary.append(f"{label}: {len(history)} epochs; last " + ", ".join(
                f"{k} {last[k]:.3f}" for k in _curve_keys(history)))
    return _section("training", "Training curves", summary=summary, numbers=numbers, visuals=visuals,
                    error="; ".join(notes) if notes and not visuals else "")


def _numeric(record) -> dict:
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}


def _curve_keys(history) -> list:
    """The numbers worth plotting: losses, accuracies, metrics (not epoch, lr, timings)."""
    return [k for k in _numeric(history[-1]) if k not in ("epoch", "lr", "learning_rate", "resolution")
            and "seconds" not in k]


def _history_figures(label, history) -> list:
    """A loss figure and an accuracy/metric figure over epochs."""
    from matplotlib.ticker import MaxNLocator

    from gradscope.figures import curves_figure

    epochs = list(range(1, len(history) + 1))  # epochs run in order (a warm-started stage restarts 'epoch' at 1)
    keys = _curve_keys(history)
    losses = {k: [r.get(k, np.nan) for r in history] for k in keys if "loss" in k}
    others = {k: [r.get(k, np.nan) for r in history] for k in keys if "loss" not in k}
    out = []
    name = "CNN" if label == "cnn" else "captioner"
    if losses:
        out.append(Visual(f"training_{label}_loss", curves_figure(losses, xlabel="epoch", ylabel="loss",
                                                                  title=f"{name} loss", x=epochs), f"{name} loss"))
    if others:
        out.append(Visual(f"training_{label}_metrics", curves_figure(others, xlabel="epoch",
                                                                     title=f"{name} accuracy / metrics", x=epochs),
                          f"{name} accuracy / metrics"))
    for v in out:
        v.image.axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    return out
