"""Re-export of the model interface, which lives at the bottom of the package
(gradscope/interface.py) so that models need not import the methods."""
from gradscope.interface import ImageModel, check_classes, resolve_class, resolve_layer, score_gradient

__all__ = ["ImageModel", "resolve_class", "resolve_layer", "score_gradient", "check_classes"]
