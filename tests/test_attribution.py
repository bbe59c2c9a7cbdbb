"""Grad-CAM, occlusion and extremal perturbation, the RISE evaluation and the per-image
faithfulness runner: parity with captum on the torch adapter, gradients against numeric
ones, exact answers on small models, clear errors, shards that merge and runs that resume."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from gradscope.cnn import CNN, tiny_vgg
from gradscope.errors import GradscopeError, UnknownClassError
from gradscope.gradcheck import eval_numerical_gradient, rel_error
from gradscope.layers.core import softmax
from gradscope.methods import gradcam, integrated_gradients, occlusion, saliency, smoothgrad
from gradscope.methods import faithfulness as F
from gradscope.methods.evaluation import deletion_insertion_auc, rank_correlation, rise_auc, step_counts
from gradscope.methods.perturbation import area_penalty, extremal_perturbation
from gradscope.torch import TorchModel
from toy_image_model import LinearImageModel, ToyImageModel

captum_attr = pytest.importorskip("captum.attr")


def tiny_cnn(seed=0, dtype=np.float64):
    cfg = tiny_vgg(num_classes=5, widths=(4, 8), input_size=16)
    return CNN(cfg, seed=seed, dtype=dtype)


def torch_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(6, 5)).double()


def torch_model(net):
    return TorchModel(net, mean=[0.5] * 3, std=[0.25] * 3, input_size=12, pixel_range=(0, 1), device="cpu")


@pytest.fixture(scope="module")
def x12():
    return np.random.default_rng(0).standard_normal((3, 3, 12, 12))


# ---------------------------------------------------------------- Grad-CAM

@pytest.mark.parametrize("layer", ["4", "3"])
def test_gradcam_equals_captum_layergradcam(x12, layer):
    net = torch_net()
    r = gradcam(torch_model(net), x12, [0, 3, 4], layer=layer)
    ref = captum_attr.LayerGradCam(net, net[int(layer)]).attribute(torch.from_numpy(x12), target=[0, 3, 4],
                                                                   relu_attributions=True)
    ref = captum_attr.LayerAttribution.interpolate(ref, (12, 12), "bilinear")[:, 0].detach().numpy()
    assert ref.max() > 0 and r.maps.shape == (3, 12, 12)
    np.testing.assert_allclose(r.maps, ref, rtol=1e-9, atol=1e-12)


def test_gradcam_log_prob_target_equals_captum_on_log_softmax(x12):
    """target='log_prob' differentiates log softmax(scores)[c]: captum's LayerGradCam on the same
    net followed by LogSoftmax."""
    net = torch_net()
    r = gradcam(torch_model(net), x12, [0, 3, 4], layer="3", target="log_prob")
    wrapped = torch.nn.Sequential(*net, torch.nn.LogSoftmax(dim=1))
    ref = captum_attr.LayerGradCam(wrapped, wrapped[3]).attribute(torch.from_numpy(x12), target=[0, 3, 4],
                                                                  relu_attributions=True)
    ref = captum_attr.LayerAttribution.interpolate(ref, (12, 12), "bilinear")[:, 0].detach().numpy()
    assert ref.max() > 0 and r.params["target"] == "log_prob"
    np.testing.assert_allclose(r.maps, ref, rtol=1e-9, atol=1e-12)
    assert not np.allclose(r.maps, gradcam(torch_model(net), x12, [0, 3, 4], layer="3").maps)
    with pytest.raises(GradscopeError, match="target"):
        gradcam(torch_model(net), x12, 0, target="prob")


def test_gradcam_default_layer_is_last_spatial_one(x12):
    net = torch_net()
    assert gradcam(torch_model(net), x12, 0).params["layer"] == "4"   # the ReLU before pooling
    m = tiny_cnn()
    x = m.preprocess(np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    assert gradcam(m, x, 1).params["layer"] == m.layer_names[m.layer_names.index("gap") - 1]


@pytest.mark.parametrize("layer", ["relu2", "pool1", "gap"])
def test_cnn_layer_gradient_matches_numeric(layer):
    m = tiny_cnn()
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16))
    up = np.random.default_rng(3).standard_normal((2, 5))
    scores, act, dact = m.layer_gradient(x, layer, lambda s: up)
    start = m.layer_names.index(layer) + 1
    num = eval_numerical_gradient(lambda a: float(np.sum(m.forward(a, start=start)[0] * up)), act.copy(),
                                  verbose=False, h=1e-5)
    assert rel_error(dact, num) < 1e-5   # ReLU and max-pool kinks limit central differences
    np.testing.assert_allclose(scores, m.scores(x))


def test_torch_layer_gradient_equals_autograd(x12):
    net = torch_net()
    up = np.random.default_rng(4).standard_normal((3, 5))
    _, act, dact = torch_model(net).layer_gradient(x12, "1", lambda s: up)
    a = net[1](net[0](torch.from_numpy(x12))).detach().requires_grad_(True)
    out = net[2:](a)
    (ref,) = torch.autograd.grad(out, a, torch.from_numpy(up))
    np.testing.assert_allclose(act, a.detach().numpy())
    np.testing.assert_allclose(dact, ref.numpy(), rtol=1e-10, atol=1e-12)


def test_gradcam_on_a_protocol_only_model():
    toy = ToyImageModel(num_classes=5, input_size=16, seed=0)
    x = toy.preprocess(np.random.default_rng(5).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    r = gradcam(toy, x, [1, 2])
    assert r.params["layer"] == "relu2" and r.maps.shape == (2, 16, 16) and np.all(r.maps >= 0)


def test_attribution_errors(x12):
    tm = torch_model(torch_net())
    with pytest.raises(GradscopeError, match="spatial extent"):
        gradcam(tm, x12, 0, layer="7")
    const = np.zeros((1, 3, 12, 12))
    for method in (gradcam, occlusion, saliency, smoothgrad, integrated_gradients):
        with pytest.raises(GradscopeError, match="constant"):
            method(tm, const, 0)
        with pytest.raises(UnknownClassError, match="out of range"):
            method(tm, x12, 9)
        with pytest.raises(UnknownClassError, match="class must be an index, wnid or name, got 1.5"):
            method(tm, x12, 1.5)
        assert np.array_equal(method(tm, x12[:1], 2.0).maps, method(tm, x12[:1], 2).maps)
        assert np.all(np.isfinite(method(tm, x12[:1], 2).maps))
    with pytest.raises(GradscopeError, match="constant"):
        extremal_perturbation(tm, const, 0, iterations=1)
    with pytest.raises(GradscopeError, match="game"):
        extremal_perturbation(tm, x12, 0, game="keep")
    with pytest.raises(GradscopeError, match="areas"):
        extremal_perturbation(tm, x12, 0, areas=(0.1, 1.5))
    for grid in (1, 13):
        with pytest.raises(GradscopeError, match=f"grid must be between 2 and the image side \\(12\\), got {grid}"):
            extremal_perturbation(tm, x12, 0, grid=grid)
    with pytest.raises(GradscopeError, match="constant"):
        deletion_insertion_auc(tm, const, 0, np.zeros((1, 12, 12)))


# ---------------------------------------------------------------- occlusion

def test_occlusion_equals_captum_occlusion(x12):
    net = torch_net()
    tm = torch_model(net)
    r = occlusion(tm, x12, [0, 3, 4], window=4, stride=2, target="score")  # (12 - 4) % 2 == 0: captum's patches
    lo, hi = tm.pixel_bounds()
    base = torch.from_numpy(np.broadcast_to((lo + hi) / 2, x12.shape).astype(np.float64).copy())
    ref = captum_attr.Occlusion(net).attribute(torch.from_numpy(x12), sliding_window_shapes=(3, 4, 4),
                                               strides=(3, 2, 2), baselines=base, target=[0, 3, 4])
    ref = ref.detach().numpy()
    np.testing.assert_allclose(ref[:, 0], ref[:, 2])
    np.testing.assert_allclose(r.maps, ref[:, 0], rtol=1e-6, atol=1e-9)


def test_occlusion_known_answer_and_edge_patch():
    W = np.zeros((3, 8, 8, 2))
    W[:, 6:8, 6:8, 0] = 1.0                      # class 0 reads the bottom-right corner only
    m = LinearImageModel(W.reshape(-1, 2))
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8))
    r = occlusion(m, x, 0, window=3, stride=3, target="score")  # starts 0, 3 and the flush 5: the corner is covered
    assert r.attributions.shape == (1, 3, 3)
    lo, hi = m.pixel_bounds()
    gray = (lo + hi) / 2
    expect = float(np.sum((x[0, :, 5:8, 5:8] - gray[0])[:, 1:, 1:]))
    assert r.attributions[0, 2, 2] == pytest.approx(expect)
    np.testing.assert_allclose(r.attributions[0, :2, :], 0, atol=1e-12)
    assert abs(r.maps[0, 0, 0]) < 1e-12 and r.maps[0, 7, 7] == pytest.approx(expect)


def test_occlusion_probability_target_is_the_softmax_drop():
    W = np.random.default_rng(1).standard_normal((3 * 6 * 6, 4))
    m = LinearImageModel(W)
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 6))
    r = occlusion(m, x, [1, 3], window=3, stride=3)  # the default target: the class's softmax probability
    assert r.params["target"] == "probability"
    p = softmax(m.scores(x))
    lo, hi = m.pixel_bounds()
    for i, c in enumerate([1, 3]):
        y = x[i:i + 1].copy()
        y[:, :, 3:6, 0:3] = (lo + hi) / 2  # the patch of row 1, column 0
        assert r.attributions[i, 1, 0] == pytest.approx(p[i, c] - softmax(m.scores(y))[0, c], rel=1e-6)
        assert r.scores[i] == pytest.approx(m.scores(x)[i, c])  # scores stay the raw class scores
    with pytest.raises(GradscopeError, match="target"):
        occlusion(m, x, 0, target="logit")


# ---------------------------------------------------------------- extremal perturbation

def test_area_penalty_gradient_and_ramp():
    pen = area_penalty([0.25, 0.5], (2.0, 8.0), iterations=3)
    p = np.random.default_rng(0).random((2, 1, 4, 4))
    values, grad = pen(p)
    f = area_penalty([0.25, 0.5], (2.0, 2.0), iterations=1)     # a constant weight for the numeric check
    num = eval_numerical_gradient(lambda q: float(np.sum(f(q)[0])), p.copy(), verbose=False, h=1e-6)
    assert rel_error(grad, num) < 1e-6
    assert pen(p)[0][0] == pytest.approx(2 * values[0]) and pen(p)[0][0] == pytest.approx(4 * values[0])
    ideal = np.zeros((1, 1, 4, 4))
    ideal[0, 0, 0, :] = 1                         # a quarter of the grid at 1: no penalty for area 0.25
    assert area_penalty([0.25], (1.0, 1.0), 1)(ideal)[0][0] == 0


def test_extremal_perturbation_finds_the_evidence():
    W = np.zeros((3, 16, 16, 2))
    W[:, 2:6, 9:13, 0] = 2.0                      # class 0 reads a 4x4 patch
    m = LinearImageModel(W.reshape(-1, 2), input_size=16)
    x = np.zeros((1, 3, 16, 16))
    x[:, :, 2:6, 9:13] = 2.0
    x[:, :, 10:, :4] = -1.0
    seen = []
    r = extremal_perturbation(m, x, 0, areas=(0.1,), game="both", iterations=60, lr=0.1, grid=8, blur_sigma=2.0,
                              callback=lambda it, info: seen.append(info["total"]))
    assert len(seen) == 60 and r.attributions.shape == (1, 2, 1, 16, 16)
    inside = r.maps[0, 2:6, 9:13].mean()
    assert inside > 2 * r.maps[0].mean() and np.unravel_index(r.maps[0].argmax(), (16, 16))[1] >= 8
    again = extremal_perturbation(m, x, 0, areas=(0.1,), game="both", iterations=60, lr=0.1, grid=8, blur_sigma=2.0)
    np.testing.assert_array_equal(r.maps, again.maps)


def test_extremal_perturbation_on_the_torch_adapter(x12):
    r = extremal_perturbation(torch_model(torch_net()), x12[:2], [0, 1], iterations=3, areas=(0.1, 0.3))
    assert r.maps.shape == (2, 12, 12) and np.all(np.isfinite(r.maps))
    assert r.params["grid"] == 2 and r.params["areas"] == (0.1, 0.3)


# ---------------------------------------------------------------- RISE evaluation

def test_rise_steps_auc_and_ties():
    assert list(step_counts(224, 224))[:3] == [0, 1792, 3584] and len(step_counts(224, 224)) == 29
    assert list(step_counts(8, 8)) == [0, 64]
    assert list(step_counts(8, 8, step=24)) == [0, 24, 48, 64]
    np.testing.assert_allclose(rise_auc(np.array([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])), [0.5, 1.0])
    W = np.zeros((3, 8, 8, 2))
    W[:, :, :, 0] = 0.1
    m = LinearImageModel(W.reshape(-1, 2))
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8))
    flat = np.zeros((1, 8, 8))                     # all tied: the order is a seeded shuffle, not raster
    a = deletion_insertion_auc(m, x, 0, flat, step=8, seed=0, random_baseline=False)
    b = deletion_insertion_auc(m, x, 0, flat, step=8, seed=0, random_baseline=False)
    np.testing.assert_array_equal(a.deletion_curves, b.deletion_curves)
    assert np.isnan(a.random_deletion_auc).all() and a.deletion_curves.shape == (1, 9)


def test_deletion_insertion_known_answer():
    W = np.zeros((3, 8, 8, 2))
    W[:, 2:4, 5:7, 0] = 0.2                       # class 0 reads one 2x2 patch
    m = LinearImageModel(W.reshape(-1, 2))
    x = np.zeros((1, 3, 8, 8))
    x[:, :, 2:4, 5:7] = 3.0
    good = np.zeros((1, 8, 8))
    good[0, 2:4, 5:7] = 1.0
    seen = []
    r = deletion_insertion_auc(m, x, 0, good, step=4, blur=(1.0, 3), chunk=10,
                               callback=lambda done, info: seen.append((done, info["total"])))
    assert seen[-1] == (4 * 17, 4 * 17)          # 17 points a curve, 4 curves
    lo, hi = m.pixel_bounds()
    gray_prob = 1 / (1 + np.exp(-0.2 * 4 * float(np.sum((lo + hi) / 2))))
    assert r.deletion_curves[0, 0] == pytest.approx(1 / (1 + np.exp(-7.2)))
    np.testing.assert_allclose(r.deletion_curves[0, 1:], gray_prob, rtol=1e-9)   # gone after one step
    np.testing.assert_allclose(r.insertion_curves[0, 1:], r.insertion_curves[0, -1], rtol=1e-9)
    assert r.deletion_auc[0] == pytest.approx(rise_auc(r.deletion_curves)[0])
    assert r.deletion_auc[0] < r.random_deletion_auc[0] and r.insertion_auc[0] > r.random_insertion_auc[0]
    json.dumps(r.to_dict())


def test_rank_correlation():
    a = np.random.default_rng(0).random((2, 5, 5))
    np.testing.assert_allclose(rank_correlation(a, a), 1.0)
    np.testing.assert_allclose(rank_correlation(a, -a), -1.0)
    np.testing.assert_allclose(rank_correlation(a, a ** 3 + 2), 1.0)          # ranks only
    tied = np.array([[[1.0, 1.0, 2.0, 3.0]]])
    expect = np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1]                 # mean ranks for ties
    assert rank_correlation(tied, np.array([[[0.0, 1, 2, 3]]]))[0] == pytest.approx(expect)
    assert np.isnan(rank_correlation(np.zeros((1, 2, 2)), a[:1, :2, :2])[0])


# ---------------------------------------------------------------- the per-image runner

@pytest.fixture
def folder(tmp_path):
    """An ImageFolder of 6 images over 3 of the toy model's wnids (and one unknown wnid)."""
    rng = np.random.default_rng(0)
    for k in range(7):
        wnid = f"n{k % 3:08d}" if k < 6 else "n99999999"
        os.makedirs(tmp_path / "data" / wnid, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "data" / wnid / f"{k}.JPEG")
    return tmp_path


def test_faithfulness_shards_merge_and_resume(folder):
    toy = ToyImageModel(num_classes=5, input_size=16, seed=0)
    items = F.folder_items(toy, folder / "data")
    assert len(items) == 6 and {i[1] for i in items} == {0, 1, 2}
    methods = F.map_methods(["random", "vanilla", "gradcam", "occlusion", "perturbation"],
                            {"occlusion": {"window": 8, "stride": 8}, "perturbation": {"iterations": 2}})
    sanity = F.randomized_copy(CNN(tiny_vgg(num_classes=5, widths=(4, 8), input_size=16), seed=0), layers=1)
    paths = []
    for k in (1, 2):
        shard = F.shard_items(items, 5, (k, 2), seed=0)
        paths.append(str(folder / f"s{k}.jsonl"))
        F.evaluate_images(toy, shard, methods, paths[-1], step=32)
    recs = F.read_records(paths[0]) + F.read_records(paths[1])
    assert len(recs) == 5 * 5 and len({r["image"] for r in recs}) == 5
    calls = []
    F.evaluate_images(toy, F.shard_items(items, 5, (1, 2), seed=0), methods, paths[0], step=32,
                      callback=lambda d, info: calls.append(d))
    assert calls == []                                        # resumed: everything was there
    table = F.merge_records(paths)
    assert set(table) == {"random", "vanilla", "gradcam", "occlusion", "perturbation"}
    assert all(e["n"] == 5 and 0 <= e["deletion_auc"] <= 1 for e in table.values())
    assert F.format_table(table)[0].startswith("| method | n |")
    with pytest.raises(GradscopeError, match="shard"):
        F.shard_items(items, 5, (3, 2))
    (folder / "bad.jsonl").write_text(open(paths[0]).read() + "not json\n")
    with pytest.raises(GradscopeError, match=f"line {len(F.read_records(paths[0])) + 1} is not a result record"):
        F.merge_records([paths[1], folder / "bad.jsonl"])
    with pytest.raises(GradscopeError, match="results file not found"):
        F.merge_records([folder / "none.jsonl"])
    F.evaluate_images(toy, [], methods, folder / "empty.jsonl")   # an empty shard leaves an empty file
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(folder / "data" / "n00000001" / "blank.JPEG")
    blank = [i for i in F.folder_items(toy, folder / "data") if i[0].endswith("blank.JPEG")]
    with pytest.raises(GradscopeError, match=r"blank\.JPEG' is constant"):   # named by its file
        F.evaluate_images(toy, blank, methods, folder / "blank.jsonl")
    assert F.merge_records([folder / "empty.jsonl"]) == {}


def test_randomized_copy_changes_only_the_top_layers():
    m = tiny_cnn()
    m.params["fc.b"] = np.random.default_rng(0).standard_normal(5)
    r = F.randomized_copy(m, layers=1, seed=0)
    changed = {k for k in m.params if not np.array_equal(m.params[k], r.params[k])}
    assert changed == {"fc.W", "fc.b"}
    net = torch_net()
    tm = torch_model(net)
    before = net[7].weight.detach().clone()
    tr = F.randomized_copy(tm, layers=2, seed=0)
    assert torch.equal(net[7].weight, before) and not torch.equal(tr.module[7].weight, before)
    assert not torch.equal(tr.module[3].weight, net[3].weight) and torch.equal(tr.module[0].weight, net[0].weight)
    x = np.random.default_rng(0).standard_normal((1, 3, 12, 12))
    assert not np.allclose(tr.scores(x), tm.scores(x))


def test_vanilla_saliency_equals_captum_saliency(x12):
    net = torch_net()
    r = saliency(torch_model(net), x12, [0, 3, 4])
    ref = captum_attr.Saliency(net).attribute(torch.from_numpy(x12).requires_grad_(), target=[0, 3, 4]).amax(1).detach().numpy()
    np.testing.assert_allclose(r.maps, ref, rtol=1e-10, atol=1e-14)
