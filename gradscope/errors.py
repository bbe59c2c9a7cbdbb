"""The errors gradscope raises for bad input, each naming the problem."""


class GradscopeError(ValueError):
    """Base class: bad input that gradscope detected before computing."""


class ShapeError(GradscopeError):
    """Arrays whose shapes do not fit together."""


class DataError(GradscopeError):
    """A missing, corrupt or malformed data file or directory."""


class UnknownClassError(GradscopeError, KeyError):
    """A class name, wnid or index the model does not know."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownLayerError(GradscopeError, KeyError):
    """A layer name or index the model does not have."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""
