"""Parameterisations (each stage's backward against numeric gradients), views (each
adjoint: <A x, y> == <x, A^T y> for a fixed random draw) and the parameterised loop
`optimize` (a perturbation mask: fixed arrays, a penalty, both directions, batches)."""
import numpy as np
import pytest

from gradscope.cnn import CNN, tiny_vgg
from gradscope.gradcheck import check_layer_gradients
from gradscope.methods import params as pm
from gradscope.methods import views as vw
from gradscope.methods.ascent import optimize
from gradscope.methods.objectives import class_log_prob
from gradscope.methods.regularizers import Prior, blur_every, clip_pixels, gaussian_blur, jitter, scale_jitter
from gradscope.methods.steps import adam_step


def tiny(dtype=np.float64, seed=1):
    return CNN(tiny_vgg(num_classes=5, widths=(4, 8), input_size=16), seed=seed, dtype=dtype)


def _stage_error(stage, p):
    return check_layer_gradients(lambda p: stage.forward(p), stage.backward, {"p": p})["p"]


@pytest.mark.parametrize("h, w", [(6, 6), (5, 7), (4, 5)])
def test_fourier_stage_backward_matches_numeric(h, w):
    init, stage = pm.fourier(2, h, w, np.random.default_rng(0), sd=1.0, dtype=np.float64)
    assert init.shape == (2, 3, h, w // 2 + 1, 2)
    assert _stage_error(stage, init) < 1e-8


@pytest.mark.parametrize("make", [pm.decorrelated_colour, pm.sigmoid_stage, lambda: pm.upsample((9, 7)),
                                  lambda: pm.to_model_range(tiny())])
def test_stage_backward_matches_numeric(make):
    p = np.random.default_rng(1).normal(size=(2, 3, 5, 4))
    assert _stage_error(make(), p) < 1e-8


def test_blend_stage_and_a_mask_chain_backward_match_numeric():
    rng = np.random.default_rng(2)
    x, x_alt = rng.normal(size=(1, 3, 8, 8)), rng.normal(size=(1, 3, 8, 8))
    assert _stage_error(pm.blend(x, x_alt), rng.uniform(size=(2, 1, 8, 8))) < 1e-8
    mask = pm.chain(rng.normal(size=(2, 1, 4, 4)), [pm.sigmoid_stage(), pm.upsample(8), pm.blend(x, x_alt)])
    err = check_layer_gradients(lambda p: mask.image(p), mask.backward, {"p": mask.init.copy()})["p"]
    assert err < 1e-8


def test_lucid_image_is_valid_pixels_and_its_backward_matches_numeric():
    m = tiny()
    param = pm.lucid_image(m, 2, 6, np.random.default_rng(3), out_size=8, dtype=np.float64)
    x = param(param.init)
    lo, hi = m.pixel_bounds()
    assert x.shape == (2, 3, 8, 8) and np.all(x >= lo) and np.all(x <= hi)
    p = param.init * 50  # away from zero, where the sigmoid is curved
    err = check_layer_gradients(lambda p: param.image(p), param.backward, {"p": p})["p"]
    assert err < 1e-7


def test_fourier_spectrum_is_scaled_by_one_over_frequency():
    """A unit coefficient at frequency f makes an image of RMS proportional to 1 / f."""
    rms = []
    for k in (1, 2, 4):
        p = np.zeros((1, 1, 16, 9, 2))
        p[0, 0, 0, k, 0] = 1.0
        rms.append(np.sqrt(np.mean(pm.fourier_stage(16, 16).forward(p)[0] ** 2)))
    np.testing.assert_allclose(np.array(rms) * [1, 2, 4], rms[0], rtol=1e-12)


def _adjoint_gap(view, shape, seed):
    """|<A x, y> - <x, A^T y>| / scale for one draw (a constant pad value is 0, so A is linear)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    out, back = view(x, np.random.default_rng(seed + 100))
    y = rng.normal(size=out.shape)
    lhs, rhs = np.sum(out * y), np.sum(x * back(y))
    return abs(lhs - rhs) / (abs(lhs) + abs(rhs))


@pytest.mark.parametrize("view", [vw.pad(3), vw.crop_jitter(4), vw.random_scale(0.7, 1.3), vw.random_rotate(30),
                                  vw.resize_to((11, 9)), jitter(3), scale_jitter(0.2)],
                         ids=lambda v: v.name)
@pytest.mark.parametrize("seed", [0, 1])
def test_view_adjoint(view, seed):
    assert _adjoint_gap(view, (2, 3, 10, 12), seed) < 1e-12


def test_views_change_the_image_and_rotation_keeps_a_constant():
    x = np.full((1, 3, 12, 12), 0.7)
    out, _ = vw.random_rotate(10)(x, np.random.default_rng(0))
    np.testing.assert_allclose(out, x)  # bilinear weights sum to 1, border clamped
    ramp = np.broadcast_to(np.arange(12.0), (1, 3, 12, 12)).copy()
    assert not np.allclose(vw.random_rotate(10)(ramp, np.random.default_rng(0))[0], ramp)
    padded, _ = vw.pad(2, value=np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1))(ramp, None)
    assert padded.shape == (1, 3, 16, 16) and padded[0, 2, 0, 0] == 3.0
    seq = vw.lucid_views(pad_width=4, jitter1=2, jitter2=2)
    out, backs = vw.apply_views(ramp, seq, np.random.default_rng(1))
    assert len(backs) == 5 and out.shape[2] != 12


def _mask_setup():
    m = tiny(np.float32)
    rng = np.random.default_rng(4)
    x = m.preprocess(rng.integers(0, 256, (1, 16, 16, 3), dtype=np.uint8))
    blurred = gaussian_blur(x, 3.0)
    target = np.full(2, int(np.argmax(m.scores(x))))
    return m, x, blurred, target


def _area_penalty(fractions, weight=1.0):
    """weight * (mean(m) - a)^2 per mask (on the parameters, here the mask itself)."""
    a = np.asarray(fractions, np.float64)

    def fn(p):
        d = p.reshape(len(p), -1).mean(axis=1) - a
        return weight * d ** 2, (2 * weight * d / p[0].size).reshape(-1, 1, 1, 1) * np.ones_like(p)

    return Prior(fn, "area")


def test_optimize_a_mask_both_ways_with_a_penalty_and_a_batch():
    m, x, blurred, target = _mask_setup()
    clip01 = vw.AfterStep("clip01", lambda p, it, model: np.clip(p, 0, 1), at_start=True)
    mask = pm.chain(np.full((2, 1, 4, 4), 0.5, np.float32), [pm.upsample(16), pm.blend(x, blurred)])
    seen = []
    kw = dict(iterations=30, step=adam_step(0.05), views=[jitter(1)], after=[clip01],
              penalty=_area_penalty([0.2, 0.6], 5.0), rng=0)
    keep = optimize(m, mask, class_log_prob(target), callback=lambda i, info: seen.append((i, info)), **kw)
    drop = optimize(m, mask, class_log_prob(target), maximize=False, **kw)
    assert keep.params.shape == (2, 1, 4, 4) and keep.x.shape == (2, 3, 16, 16)
    assert np.all(keep.params >= 0) and np.all(keep.params <= 1)
    p_keep, p_drop = keep.history["target_prob"][-1], drop.history["target_prob"][-1]
    assert np.all(p_keep > p_drop)
    assert np.all(keep.history["objective"][-1] > drop.history["objective"][-1])
    assert keep.history["penalty"][-1, 0] < keep.history["penalty"][0, 0]  # pulled towards its area
    area = keep.params.reshape(2, -1).mean(axis=1)
    assert area[0] < area[1]  # each mask of the batch held to its own area
    assert [i for i, _ in seen] == list(range(1, 31)) and seen[-1][1]["total"] == 30
    assert seen[-1][1]["images"].shape == (2, 16, 16, 3) and set(seen[-1][1]) >= {"objective", "penalty"}
    again = optimize(m, mask, class_log_prob(target), **kw)
    np.testing.assert_array_equal(again.params, keep.params)  # seeded


def test_optimize_pixels_with_after_steps_stays_in_range():
    m, x, _, target = _mask_setup()
    run = optimize(m, pm.pixel(x * 0), class_log_prob(target[:1]), iterations=5, step=adam_step(0.5),
                   after=[blur_every(2, 0.5), clip_pixels()], rng=0)
    lo, hi = m.pixel_bounds()
    assert np.all(run.x >= lo - 1e-6) and np.all(run.x <= hi + 1e-6)
    assert run.history["target_prob"].shape == (5, 1)
