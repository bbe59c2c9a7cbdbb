"""gradscope's own answers to the TODO functions of the CS231n (2016) ImageGradients and
ImageGeneration notebooks, written against gradscope.course only (forward/backward of
PretrainedCNN, blur_image), for scripts/run_course_notebooks.py --answers.

Each answer keeps the skeleton's signature and keyword defaults, and prints one line of
numbers (the notebooks show images instead). `install(ns)` swaps them into a notebook's
namespace after the cell that defines the skeleton (a function whose body is unfilled).
"""
import numpy as np

from gradscope.course.image_utils import blur_image


def _softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _score_gradient(model, X, classes):
    """(scores (N, C), d sum_i scores[i, classes[i]] / dX)."""
    scores, cache = model.forward(X, mode="test")
    dscores = np.zeros_like(scores)
    dscores[np.arange(len(X)), classes] = 1.0
    return scores, model.backward(dscores, cache)[0]


def compute_saliency_maps(X, y, model):
    """|d score_y / dX|, the largest over the colour channels: (N, H, W)."""
    _, dX = _score_gradient(model, X, np.asarray(y))
    return np.abs(dX).max(axis=1)


def make_fooling_image(X, target_y, model, step=200.0, max_iterations=100):
    """Normalised gradient ascent on the target score (steps of L2 norm `step`, course
    units) until the model predicts target_y."""
    X_fooling = np.array(X, dtype=np.float64)
    for it in range(max_iterations):
        scores, dX = _score_gradient(model, X_fooling, [target_y])
        if scores[0].argmax() == target_y:
            break
        X_fooling += step * dX / (np.linalg.norm(dX) + 1e-12)
    scores = model.loss(X_fooling)
    print(f"[answer] fooled: {scores[0].argmax() == target_y} after {it} steps, target p = "
          f"{_softmax(scores)[0, target_y]:.3f}, L2 change {np.linalg.norm(X_fooling - X):.1f}")
    return X_fooling


def _jitter(X, max_jitter):
    ox, oy = np.random.randint(-max_jitter, max_jitter + 1, 2)
    return np.roll(np.roll(X, ox, -1), oy, -2), (ox, oy)


def _unjitter(X, shift):
    return np.roll(np.roll(X, -shift[0], -1), -shift[1], -2)


def class_visualization(mean_image):
    def create_class_visualization(target_y, model, **kwargs):
        """Ascent on score_y(X) - l2_reg * ||X||^2 with jitter, clipping to valid pixels
        and periodic blur (the skeleton's regularisers), from small noise."""
        lr, blur_every = kwargs.pop("learning_rate", 10000), kwargs.pop("blur_every", 1)
        l2_reg, max_jitter = kwargs.pop("l2_reg", 1e-6), kwargs.pop("max_jitter", 4)
        kwargs.pop("show_every", 25)
        iterations = kwargs.pop("num_iterations", 100)
        X = np.random.randn(1, 3, 64, 64)
        for t in range(iterations):
            X, shift = _jitter(X, max_jitter)
            _, dX = _score_gradient(model, X, [target_y])
            X = X + lr * (dX - 2 * l2_reg * X)
            X = np.clip(_unjitter(X, shift), -mean_image, 255.0 - mean_image)
            if blur_every and t % blur_every == 0:
                X = blur_image(X)
        p = _softmax(model.loss(X))[0]
        print(f"[answer] class {target_y}: probability {p[target_y]:.3f} after {iterations} iterations "
              f"(top class {p.argmax()})")
        return X
    return create_class_visualization


def feature_inversion(mean_image):
    def invert_features(target_feats, layer, model, **kwargs):
        """Descent on ||phi(X) - target||^2 + l2_reg * ||X||^2, clipping and periodic blur."""
        lr, iterations = kwargs.pop("learning_rate", 10000), kwargs.pop("num_iterations", 500)
        l2_reg, blur_every = kwargs.pop("l2_reg", 1e-7), kwargs.pop("blur_every", 1)
        kwargs.pop("show_every", 50)
        X = np.random.randn(1, 3, 64, 64)
        for t in range(iterations):
            feats, cache = model.forward(X, end=layer)
            dX = model.backward(2 * (feats - target_feats), cache)[0]
            X = np.clip(X - lr * (dX + 2 * l2_reg * X), -mean_image, 255.0 - mean_image)
            if blur_every > 0 and t % blur_every == 0:
                X = blur_image(X)
        feats, _ = model.forward(X, end=layer)
        rel = np.linalg.norm(feats - target_feats) / np.linalg.norm(target_feats)
        print(f"[answer] layer {layer}: relative feature distance {rel:.3f} after {iterations} iterations")
        return X
    return invert_features


def dream(mean_image):
    def deepdream(X, layer, model, **kwargs):
        """Ascent on 0.5 * ||activations at `layer`||^2 (the gradient at the layer is the
        activation itself), with jitter and clipping to valid pixels."""
        X = np.array(X, dtype=np.float64)
        lr, max_jitter = kwargs.pop("learning_rate", 5.0), kwargs.pop("max_jitter", 16)
        iterations = kwargs.pop("num_iterations", 100)
        kwargs.pop("show_every", 25)
        mean_pixel = mean_image.mean(axis=(1, 2), keepdims=True)
        start = np.sqrt(np.mean(model.forward(X, end=layer)[0] ** 2))
        for t in range(iterations):
            X, shift = _jitter(X, max_jitter)
            act, cache = model.forward(X, end=layer)
            X = X + lr * model.backward(act, cache)[0]
            X = np.clip(_unjitter(X, shift), -mean_pixel, 255.0 - mean_pixel)
        end = np.sqrt(np.mean(model.forward(X, end=layer)[0] ** 2))
        print(f"[answer] layer {layer}: activation RMS {start:.3f} -> {end:.3f} after {iterations} iterations")
        return X
    return deepdream


_SIMPLE = {"compute_saliency_maps": compute_saliency_maps, "make_fooling_image": make_fooling_image}
_WITH_MEAN = {"create_class_visualization": class_visualization, "invert_features": feature_inversion,
              "deepdream": dream}


def install(ns):
    """Replace the skeleton functions the namespace defines; returns the names replaced."""
    replaced = []
    for name, fn in _SIMPLE.items():
        if name in ns and ns[name] is not fn and getattr(ns[name], "__module__", None) == "__main__":
            ns[name] = fn
            replaced.append(name)
    for name, make in _WITH_MEAN.items():
        current = ns.get(name)
        if current is not None and getattr(current, "__module__", None) == "__main__" and "data" in ns:
            ns[name] = make(np.asarray(ns["data"]["mean_image"], dtype=np.float64))
            replaced.append(name)
    return replaced
