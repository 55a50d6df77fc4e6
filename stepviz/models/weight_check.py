"""Before a component is built from its files: its config's values have the types its class takes, and the
tensors of its weight files are the ones that config makes, by name and shape.

diffusers and transformers load a file whose tensors do not fit their model with a warning (kept quiet here)
and leave the missing weights uninitialised: a UNet file replaced by the text encoder's then runs on NaN and
values near 1e38. So each component is built on the meta device (no memory, no weights) from its config, and
its state_dict's names and shapes are compared with the safetensors headers, which name every tensor.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import struct
import types
import typing
from pathlib import Path

from .folder_check import ModelLoadError, read_json

# diffusers still reads checkpoints whose attention layers use the old names (diffusers' modeling_utils converts
# them on load: query/key/value/proj_attn -> to_q/to_k/to_v/to_out.0).
OLD_ATTENTION_NAMES = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}
ALWAYS_IGNORED = (r"position_ids$",)  # a buffer some exports keep and others drop; the model makes its own


def component_class(name: str, library: str, class_name: str):
    """The class model_index.json names for a component (diffusers or transformers only)."""
    if library not in ("diffusers", "transformers"):
        raise ModelLoadError(f"component {name!r}: library {library!r} is not diffusers or transformers")
    cls = getattr(importlib.import_module(library), class_name, None)
    if cls is None:
        raise ModelLoadError(f"component {name!r}: {library} has no class {class_name!r}")
    return cls


def check_component(name: str, cls, folder: Path, variant: str | None = None, allow_pickle: bool = False) -> None:
    """One line naming the component and its first wrong value or tensor, or nothing when its files fit."""
    import torch

    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        return  # tokenizers, schedulers, image processors: no weights
    config_path = folder / "config.json"
    config = read_json(config_path, f"{name} component")
    config_class = getattr(cls, "config_class", None)
    check_config_types(config, config_class or cls, config_path)
    files = _weight_files(folder, variant)
    if not files:
        if allow_pickle:
            return  # pickles the user allowed: their loader reads them as they are
        raise ModelLoadError(f"the {name} component ({cls.__name__}) in {folder} has no *.safetensors weights: "
                             "stepviz loads safetensors only (load_pipeline(..., allow_pickle=True) if you trust "
                             "the pickles)")
    found = {}
    for path in files:
        found.update(read_header(path))
    expected, ignored_missing, ignored_unexpected = _expected_tensors(cls, config, config_class, config_path)
    found = _as_the_model_names(found, expected, getattr(cls, "base_model_prefix", ""))
    where = f"the {name} weights in {folder}"
    for key, shape in found.items():
        if key in expected and tuple(expected[key]) != tuple(shape):
            raise ModelLoadError(f"{where} do not fit its config: {key} is {list(shape)}, {cls.__name__} "
                                 f"needs {list(expected[key])} (a file of another model?)")
    missing = [key for key in expected if key not in found and not _matches(key, ignored_missing)]
    if missing:
        raise ModelLoadError(f"{where} lack {len(missing)} of the {len(expected)} tensors {cls.__name__} needs, "
                             f"first {missing[0]} (a file of another model, or a partial export?)")
    unexpected = [key for key in found if key not in expected and not _matches(key, ignored_unexpected)]
    if unexpected:
        raise ModelLoadError(f"{where} hold {len(unexpected)} tensors {cls.__name__} does not have, first "
                             f"{unexpected[0]} (a file of another model?)")


def check_config_types(config: dict, cls, path: Path) -> None:
    """Each value of a config the class's constructor annotates has a type that annotation admits."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that names what this Python cannot resolve: check by the defaults alone
        hints = {}
    parameters = inspect.signature(cls.__init__).parameters
    for key, value in config.items():
        if key.startswith("_") or key not in parameters:
            continue
        hint = hints.get(key, _hint_from_default(parameters[key].default))
        if hint is not None and not value_fits(value, hint):
            raise ModelLoadError(f"{path}: {key} is {json.dumps(value)[:60]} ({type(value).__name__}); "
                                 f"{cls.__name__} takes {_describe(hint)}")


# JSON values that stand for a plain annotation (a bool is not an int here, though Python says it is)
SCALAR_FITS = {
    type(None): lambda value: value is None,
    bool: lambda value: isinstance(value, bool),
    int: lambda value: isinstance(value, int) and not isinstance(value, bool),
    float: lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    str: lambda value: isinstance(value, str),
}


def value_fits(value, hint) -> bool:
    """Whether a JSON value can stand for a Python annotation (lists for tuples; unknown types pass)."""
    if hint is typing.Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(value_fits(value, arm) for arm in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint in SCALAR_FITS:
        return SCALAR_FITS[hint](value)
    if hint in (tuple, list) or origin in (tuple, list):
        return _sequence_fits(value, hint, origin)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True  # a class of its own (a dtype, a config object): the constructor judges it


def _sequence_fits(value, hint, origin) -> bool:
    """A JSON list for tuple[...] / list[...]: each item fits an arm (a fixed-length tuple: item by item)."""
    if not isinstance(value, list):
        return False
    arms = [arm for arm in typing.get_args(hint) if arm is not Ellipsis]
    if not arms:
        return True
    if origin is tuple and Ellipsis not in typing.get_args(hint) and len(arms) > 1:
        return len(value) == len(arms) and all(value_fits(v, arm) for v, arm in zip(value, arms))
    return all(any(value_fits(v, arm) for arm in arms) for v in value)


def _hint_from_default(default):
    if default is None or default is inspect.Parameter.empty:
        return None
    return type(default) if isinstance(default, (bool, int, float, str)) else None


def _describe(hint) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "")


def read_header(path: Path) -> dict[str, list[int]]:
    """Each tensor's name and shape, from a safetensors file's header (an 8-byte little-endian length, then
    JSON with each tensor's dtype, shape and data_offsets)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {key: entry["shape"] for key, entry in header.items() if key != "__metadata__"}


def _weight_files(folder: Path, variant: str | None) -> list[Path]:
    """The safetensors files from_pretrained reads: the variant's when one is asked for and present."""
    files = sorted(path for path in folder.glob("*.safetensors") if path.is_file())
    marked = [path for path in files if len(path.name.split(".")) > 2]
    if variant is not None:
        chosen = [p for p in marked if p.name.split(".")[1].split("-")[0] == variant]
        if chosen:
            return chosen
    plain = [path for path in files if path not in marked]
    return plain or files


def _expected_tensors(cls, config: dict, config_class, path: Path):
    """(name -> shape of the model's state_dict, patterns of missing keys it tolerates, of unexpected keys)."""
    import torch

    try:
        with torch.device("meta"):
            if config_class is not None:  # transformers: a config object, then the model on it
                settings = {key: value for key, value in config.items() if not key.startswith("_")}
                model = cls._from_config(config_class(**settings))
            else:
                model = cls.from_config(config)
    except Exception as exc:  # a value the constructor cannot use (a channel count that does not divide...)
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: {cls.__name__} cannot be built from it ({text})") from None
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = list(ALWAYS_IGNORED) + list(getattr(cls, "_keys_to_ignore_on_load_missing", None) or [])
    unexpected = list(ALWAYS_IGNORED) + list(getattr(cls, "_keys_to_ignore_on_load_unexpected", None) or [])
    missing += [re.escape(key) + "$" for key in _tied_names(model)]
    return expected, missing, unexpected


def _tied_names(model) -> list[str]:
    """Names of parameters that share their tensor with another parameter (tied weights need one file entry)."""
    groups: dict[int, list[str]] = {}
    for key, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(parameter), []).append(key)
    return [key for names in groups.values() if len(names) > 1 for key in names]


def _as_the_model_names(found: dict, expected: dict, prefix: str) -> dict:
    """The file's names as the loaders read them: old attention names converted, a base-model prefix added or
    dropped where the file was saved from the bare model or its head."""
    if found.keys() & expected.keys() or not found:
        converted = {_new_attention_name(key, expected): shape for key, shape in found.items()}
        return converted
    if prefix and all(key.startswith(prefix + ".") for key in found):
        return {key[len(prefix) + 1:]: shape for key, shape in found.items()}
    if prefix:
        return {f"{prefix}.{key}": shape for key, shape in found.items()}
    return found


def _new_attention_name(key: str, expected: dict) -> str:
    if key in expected:
        return key
    for old, new in OLD_ATTENTION_NAMES.items():
        if old in key and key.replace(old, new) in expected:
            return key.replace(old, new)
    return key


def _matches(key: str, patterns) -> bool:
    return any(re.search(pattern, key) for pattern in patterns)
