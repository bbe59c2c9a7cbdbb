"""gradscope: recurrent captioning models and image-gradient methods, with
hand-written forward and backward passes in NumPy."""

__version__ = "0.1.0"
