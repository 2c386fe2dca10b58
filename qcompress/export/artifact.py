"""Write a complete artifact directory or nothing at all.

Every exporter writes into a temp directory next to ``out_dir``; the manifest is written last and
the directory is swapped in with a rename. Any failure (including a parity :class:`CheckFailed`)
deletes the temp directory and leaves an existing ``out_dir`` untouched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcompress import registry
from qcompress.atomic import (
    paths_overlap,
    remove_stale_siblings,
    rename_into_place,
    replace_directory,
    staging_directory,
    write_json_atomic,
)
from qcompress.errors import CapabilityError, InputError
from qcompress.export.exporter import DEFAULT_PROMPTS, DTYPES, ExportOptions
from qcompress.export.files import make_readable
from qcompress.export.manifest import MANIFEST, build_manifest
from qcompress.export.source import parameter_count
from qcompress.methods.base import Collapsed

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from qcompress.export.quantize import QuantizeOptions

DEFAULT_OPSET = MIN_OPSET = 18
MAX_OPSET = 23
SMALL_MODEL_PARAMS = 50_000_000
DEFAULT_FORMATS = ("safetensors", "onnx")


def default_atol(model: Any) -> float:
    """1e-4 for small models; 1e-3 above ~50M parameters, where float32 summation order alone
    moves logits by a few 1e-4 across deep stacks."""
    return 1e-4 if parameter_count(model) < SMALL_MODEL_PARAMS else 1e-3


def resolve_options(model: Any, dtype: str, atol: float | None, opset: int, prompts: list[str] | None) -> ExportOptions:
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    if atol is not None and not atol > 0:
        raise InputError(f"atol must be > 0, got {atol}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"opset must be between {MIN_OPSET} and {MAX_OPSET} (torch's dynamo exporter), got {opset}")
    chosen = tuple(prompts) if prompts else DEFAULT_PROMPTS
    return ExportOptions(dtype=dtype, atol=atol if atol is not None else default_atol(model), opset=opset, prompts=chosen)


def is_artifact_dir(path: Path) -> bool:
    """A directory holding a qcompress manifest (the only kind of directory ``--force`` replaces)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and {"format_version", "files", "formats"} <= manifest.keys()


def check_out_dir(out_dir: Path, force: bool, source: Path | None = None) -> None:
    """Refuse an ``--out`` that would lose data (callers check early, before slow loads).

    ``--force`` replaces an existing artifact and nothing else: not a user's folder, not a run,
    not a file, and never the source being exported or a folder around it. What killed exports
    left beside ``out_dir`` is cleared first (an artifact set aside by an unfinished swap is put back).
    """
    remove_stale_siblings(out_dir)
    if source is not None and source.exists() and paths_overlap(out_dir, source):
        raise InputError(f"--out {out_dir} overlaps the source {source}: export to a directory outside it")
    if out_dir.is_symlink():
        raise InputError(f"--out {out_dir} is a symbolic link: give the directory it points to, or another --out")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not an artifact directory: choose another --out")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not is_artifact_dir(out_dir):  # --force would be refused too: do not suggest it
        raise InputError(
            f"{'refusing to --force over' if force else '--out'} {out_dir}: it is not empty and not a qcompress artifact "
            f"(no qcompress {MANIFEST}); choose another --out"
        )
    if not force:
        raise InputError(f"{out_dir} already exists; pass --force to replace it or choose another --out")


def export_artifact(
    model: Collapsed | PreTrainedModel,
    tokenizer: Any,
    out_dir: Path,
    *,
    source: dict[str, Any],
    formats: tuple[str, ...] | list[str] | None = None,
    dtype: str = "float32",
    atol: float | None = None,
    force: bool = False,
    command: str = "",
    prompts: list[str] | None = None,
    opset: int = DEFAULT_OPSET,
    progress: Callable[[str], None] | None = None,
    quantize: QuantizeOptions | None = None,
) -> dict[str, Any]:
    """Export ``model`` (a method's collapse, or a plain model) in each format under ``out_dir``;
    returns the manifest written there. With ``quantize`` the checked float32 ONNX decoder is replaced
    by its quantized form, gated on perplexity (:mod:`qcompress.export.quantize`)."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force)
    collapsed = model if isinstance(model, Collapsed) else Collapsed(model)
    model = collapsed.model
    # A model can refuse formats that would silently lose part of it (a collapsed QTHA model keeps a
    # circuit plain transformers cannot load); the default then skips them, an explicit request fails.
    refused = collapsed.unsupported_formats
    if formats is None:
        formats = [name for name in DEFAULT_FORMATS if name not in refused]
    for name in formats:
        if name in refused:
            raise CapabilityError(f"cannot export format {name!r}: {refused[name]}")
    if not formats or len(set(formats)) != len(formats):
        raise InputError(f"give each export format once, e.g. --format safetensors,onnx (got {list(formats)})")
    exporters = [registry.get("exporter", name)() for name in formats]
    for exporter in exporters:  # before anything is staged: an exporter may need more than the merged model
        if hasattr(exporter, "prepare"):
            exporter.prepare(collapsed, source)
    check_quantize_formats(quantize, formats)
    options = resolve_options(model, dtype, atol, opset, prompts)
    model.eval()
    gate = None
    if quantize is not None:  # the held-out text is loaded before anything is staged: a missing corpus fails early
        from qcompress.export.quantize_gate import gate_data

        gate = gate_data(model, tokenizer, source, quantize.data, quantize.eval_data, quantize.eval_tokens)
    staging = staging_directory(out_dir)
    try:
        infos = {}
        for exporter in exporters:
            target = staging / exporter.directory
            target.mkdir()
            if progress:
                progress(f"exporting {exporter.name} -> {out_dir / exporter.directory}")
            infos[exporter.name] = exporter.export(model, tokenizer, target, options)
            extra = collapsed.extra_files.get(exporter.name)
            if extra is not None:  # e.g. prefix tuning's PEFT adapter beside the safetensors weights
                infos[exporter.name].update(extra(target))
        if quantize is not None and gate is not None:
            from qcompress.export.quantize import quantize_onnx

            if progress:
                progress(f"quantizing the ONNX decoder to {quantize.scheme}, then measuring perplexity on {gate.description}")
            infos["onnx"]["quantization"] = quantize_onnx(model, staging / "onnx", quantize, gate)
        manifest = build_manifest(staging, source=source, formats=infos, options=options, command=command)
        if refused:
            manifest["not_exported"] = refused
        write_json_atomic(staging / MANIFEST, manifest)
        make_readable(staging)
        if force:
            replace_directory(staging, out_dir)
        else:
            _publish_new(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def check_quantize_formats(quantize: QuantizeOptions | None, formats: tuple[str, ...] | list[str] | None) -> None:
    """``--quantize`` acts on the ONNX decoder: refuse a format list without it (cheap, so callers check early)."""
    if quantize is not None and formats is not None and "onnx" not in formats:
        raise InputError(f"--quantize {quantize.scheme} quantizes the ONNX decoder, but --format {','.join(formats)} "
                         "has no onnx: add onnx to --format")


def _publish_new(staging: Path, out_dir: Path) -> None:
    """Without --force the artifact goes only where nothing is: another export that finished first
    into the same --out keeps its artifact, and this one says so instead of replacing it."""
    try:
        rename_into_place(staging, out_dir)
    except FileExistsError:
        hint = "choose another --out, or --force to replace it" if is_artifact_dir(out_dir) else "choose another --out"
        raise InputError(f"{out_dir} was created by another process while this export ran: nothing was replaced; {hint}") from None
