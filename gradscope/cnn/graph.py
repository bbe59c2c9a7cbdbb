"""A CNN config's layers as the flat sequence of steps the engine runs.

A config layer is either a layer of a type in gradscope.cnn.layer_types.LAYER_TYPES or
a residual block::

    {"name": "block3", "type": "residual", "skip": "auto", "layers": [...sub-layer dicts...]}

A block is its sub-layers run in sequence plus a skip connection that adds the block's
input to their output. "skip" is "auto" (the default: identity skip when the block's
input and output shapes are equal, none otherwise), "identity" (always; a ShapeError
when the shapes differ) or "none". Blocks may nest.

Flattened, every layer becomes a Step named by its qualified name ("block3.expand"),
and each block becomes one more step, its *join*, right after its last sub-layer,
named like the block ("block3"): the join adds the skip. So the steps are every
addressable point of the network in the order it runs, and running the steps up to
"block3.dw" stops inside the block (no skip), while up to "block3" includes the skip.
A join's record is `JOIN`.

`walk` carries an input through a run of steps (shapes for shape inference, arrays for
the engine's forward), keeping each open block's input for its join; `walk_back` is
its reverse for gradients. They are the one place that knows about blocks.
"""
from __future__ import annotations

from typing import NamedTuple

from gradscope.cnn.layer_types import BLOCK, LAYER_TYPES, LayerType
from gradscope.errors import GradscopeError, ShapeError

__all__ = ["Step", "flatten", "SKIPS", "skip_applies", "JOIN", "JoinType", "walk", "walk_back"]

SKIPS = ("auto", "identity", "none")


class JoinType:
    """The record of a join (a block's end, see the module docstring): it has no params
    or buffers; it adds the block's input when the skip applies (skip_applies)."""
    foldable = is_batchnorm = False

    @staticmethod
    def params(layer):
        return {}

    buffers = params

    @staticmethod
    def output_shape(step, shape, in_shape):
        """(per-example output shape, whether the skip applies) for the block's input shape."""
        return tuple(shape), skip_applies(step, in_shape, shape)

    @staticmethod
    def forward(step, x, block_in):
        """(output: x plus the block's input when the skip applies; cache: whether it did)."""
        skip = skip_applies(step, block_in.shape, x.shape)
        return (x + block_in if skip else x), skip

    @staticmethod
    def backward(dout, skip):
        """(gradient of x, gradient of the block's input: dout through the skip, else None)."""
        return dout, (dout if skip else None)


JOIN = JoinType()


class Step(NamedTuple):
    """One step of the flat sequence."""
    name: str                # qualified name: "conv1", "block3.expand", or "block3" for a join
    layer: dict              # the config dict of the layer (of the block, for a join)
    kind: LayerType | JoinType  # the layer's record; JOIN for a join
    opens: tuple             # names of the blocks whose input is this step's input, outer first


def flatten(layers: list, prefix: str = "") -> list:
    """The steps of a config's layer list (checked: names, types, block keys)."""
    steps, seen = [], set()
    for i, layer in enumerate(layers):
        _check_layer(layer, i, prefix, seen)
        name = prefix + layer["name"]
        if layer["type"] != BLOCK:
            steps.append(Step(name, layer, LAYER_TYPES[layer["type"]], ()))
            continue
        inner = flatten(layer["layers"], name + ".")
        inner[0] = inner[0]._replace(opens=(name,) + inner[0].opens)
        steps += inner + [Step(name, layer, JOIN, ())]
    return steps


def _check_layer(layer, i, prefix, seen):
    where = f"config layer {prefix}{i}"
    if not isinstance(layer, dict) or not isinstance(layer.get("name"), str) or "type" not in layer:
        raise GradscopeError(f"{where} must be a dict with a 'name' string and a 'type'")
    name, t = layer["name"], layer["type"]
    if not name or "." in name:
        raise GradscopeError(f"{where}: layer name {name!r} must be non-empty and contain no '.'")
    if name in seen:
        raise GradscopeError(f"duplicate layer name {prefix + name!r} in config")
    seen.add(name)
    if t == BLOCK:
        if not isinstance(layer.get("layers"), list) or not layer["layers"]:
            raise GradscopeError(f"residual block {prefix + name!r} needs a non-empty 'layers' list")
        if layer.get("skip", "auto") not in SKIPS:
            raise GradscopeError(f"residual block {prefix + name!r}: skip must be one of {', '.join(SKIPS)}, "
                                 f"got {layer['skip']!r}")
    elif t not in LAYER_TYPES:
        raise GradscopeError(f"layer {prefix + name!r}: unknown type {t!r}; known: "
                             f"{', '.join(list(LAYER_TYPES) + [BLOCK])}")


def skip_applies(step: Step, in_shape: tuple, out_shape: tuple) -> bool:
    """Whether a join adds its block's input, for those per-example (or batch) shapes."""
    skip = step.layer.get("skip", "auto")
    if skip == "identity" and tuple(in_shape) != tuple(out_shape):
        raise ShapeError(f"residual block {step.name!r} has skip 'identity' but maps shape {tuple(in_shape)} "
                         f"to {tuple(out_shape)}")
    return skip != "none" and tuple(in_shape) == tuple(out_shape)


def walk(items, x, layer, join):
    """Carry x through `items`, (step, payload) pairs in running order: x, note =
    layer(step, payload, x) at a layer, join(step, x, block_input) at a join, where
    block_input is the x its block's first step received. Returns (x, [note per item])."""
    notes, block_in = [], {}
    for step, payload in items:
        block_in.update({b: x for b in step.opens})
        x, note = join(step, x, block_in.pop(step.name)) if step.kind is JOIN else layer(step, payload, x)
        notes.append(note)
    return x, notes


def walk_back(items, d, layer):
    """The reverse of walk for a gradient d of its output: `items` are (step, note of
    the forward walk) in running order; d = layer(step, note, d) at a layer; at a join
    whose skip applied, d also goes to the block's input. Returns the gradient of the
    walk's input."""
    to_block_in = {}
    for step, note in reversed(items):
        if step.kind is JOIN:
            d, skip_d = JOIN.backward(d, note)
            if skip_d is not None:
                to_block_in[step.name] = skip_d
        else:
            d = layer(step, note, d)
        for b in reversed(step.opens):
            if b in to_block_in:
                d = d + to_block_in.pop(b)
    return d
