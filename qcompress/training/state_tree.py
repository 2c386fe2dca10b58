"""A nested training state split into plain JSON and a flat dict of tensors, and joined back exactly.

Optimizer, scheduler and RNG states are trees of dicts, lists, tuples, scalars and tensors. Saving
them without pickle means JSON for the structure and safetensors for the tensors; this module does
the split so that nothing is lost on the way back: PyTorch's ``Optimizer.load_state_dict`` needs
its int keys back as ints, ``random.setstate`` needs tuples back as tuples, and an ``inf`` or
``nan`` (which strict JSON cannot spell) must come back as the same float.

JSON values that have no JSON spelling are objects with exactly one key, the tag:

- ``{"$tensor": NAME}``     the tensor stored under NAME
- ``{"$tuple": [...]}``     a tuple
- ``{"$dict": [[K, V], ...]}`` a dict whose keys are not all plain strings (int keys, or a string
  starting with ``$``, which would read as a tag)
- ``{"$float": "inf" | "-inf" | "nan"}`` a non-finite float

Every other JSON object is a plain dict with string keys. Decoding is strict: an unknown tag, a
value of an unexpected type or a tensor name that is not there raises :class:`MalformedState`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

TAG = "$"
TENSOR, TUPLE, DICT, FLOAT = "$tensor", "$tuple", "$dict", "$float"
NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class MalformedState(ValueError):
    """Encoded state that this module did not write (the caller names the file it came from)."""


def encode(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """(JSON-serialisable structure, tensors by name) of ``state``; names follow the path to each
    tensor (``optimizer/state/0/exp_avg``) so the tensor file reads on its own."""
    tensors: dict[str, torch.Tensor] = {}
    return _encode(state, "", tensors), tensors


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {FLOAT: repr(value)}
    if isinstance(value, torch.Tensor):
        if path in tensors:
            raise ValueError(f"two tensors would be stored under {path!r}")
        tensors[path] = value
        return {TENSOR: path}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, _child(path, index), tensors) for index, item in enumerate(value)]
        return {TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return _encode_dict(value, path, tensors)
    raise TypeError(f"cannot encode {type(value).__name__} at {path or 'the top'} of a training state")


def _encode_dict(value: dict, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    for key in value:
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"cannot encode the {type(key).__name__} key {key!r} at {path or 'the top'} of a training state")
    pairs = [(key, _encode(item, _child(path, key), tensors)) for key, item in value.items()]
    if all(isinstance(key, str) and not key.startswith(TAG) for key in value):
        return dict(pairs)
    return {DICT: [list(pair) for pair in pairs]}


def _child(path: str, key: str | int) -> str:
    return f"{path}/{key}" if path else str(key)


def decode(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The state that :func:`encode` split into ``data`` and ``tensors``."""
    if data is None or isinstance(data, (bool, int, str)):
        return data
    if isinstance(data, float):
        if not math.isfinite(data):  # written as a tag, never as a bare float
            raise MalformedState(f"bare non-finite float {data!r}")
        return data
    if isinstance(data, list):
        return [decode(item, tensors) for item in data]
    if not isinstance(data, dict):
        raise MalformedState(f"unexpected {type(data).__name__} value")
    if not any(isinstance(key, str) and key.startswith(TAG) for key in data):
        return {key: decode(item, tensors) for key, item in data.items()}
    if len(data) != 1:
        raise MalformedState(f"tag object with more than one key: {sorted(data)}")
    ((tag, body),) = data.items()
    return _decode_tagged(tag, body, tensors)


def _decode_tagged(tag: str, body: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if tag == TENSOR and isinstance(body, str):
        if body not in tensors:
            raise MalformedState(f"tensor {body!r} is referenced but not stored")
        return tensors[body]
    if tag == TUPLE and isinstance(body, list):
        return tuple(decode(item, tensors) for item in body)
    if tag == FLOAT and isinstance(body, str) and body in NON_FINITE:
        return NON_FINITE[body]
    if tag == DICT and isinstance(body, list):
        return dict(_decode_pair(pair, tensors) for pair in body)
    raise MalformedState(f"unknown tag {tag!r} (or a {type(body).__name__} where it expects another type)")


def _decode_pair(pair: Any, tensors: dict[str, torch.Tensor]) -> tuple[str | int, Any]:
    if not (isinstance(pair, list) and len(pair) == 2) or isinstance(pair[0], bool) or not isinstance(pair[0], (str, int)):
        raise MalformedState(f"a {DICT} entry is not a [str or int key, value] pair")
    return pair[0], decode(pair[1], tensors)
