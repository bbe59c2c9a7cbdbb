"""The defaults of the image methods on the shipped TinyImageNet-100-A CNN."""
import numpy as np

from gradscope.cnn import load_pretrained
from gradscope.methods import visualize_class


def test_class_visualization_defaults_reach_099():
    model = load_pretrained()
    # Egyptian cat has close rivals (tabby, Persian cat): the hardest class we tried
    r = visualize_class(model, ["Egyptian cat", "pretzel"])
    assert r.params["recipe"] == "pixel" and r.params["iterations"] == 200  # the model's own
    assert np.all(r.final_prob >= 0.99)
    assert np.all(r.prob_history[-1] >= 0.99)
