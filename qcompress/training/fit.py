"""The whole ``qcompress fit`` loop, readable in one sitting (no framework where a loop will do)."""

from __future__ import annotations

import json
import math
import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from tqdm.auto import tqdm
from transformers import get_scheduler

from qcompress.atomic import paths_overlap, write_json_atomic, write_text_atomic
from qcompress.config import one_line, validated
from qcompress.console import note
from qcompress.data import Corpus, load_corpus
from qcompress.errors import CheckFailed, InputError, Interrupted
from qcompress.interrupts import interrupts_deferred
from qcompress.methods import AdaptedModel, get_method, get_method_class
from qcompress.runtime.context import context_length, eval_window, fit_to_context
from qcompress.training.batches import BlockSampler
from qcompress.training.checkpoint import load_checkpoint, save_checkpoint
from qcompress.training.config import FitConfig
from qcompress.training.device import resolve_device
from qcompress.training.distributed import Processes
from qcompress.training.evaluate import perplexity
from qcompress.training.plots import plot_curves
from qcompress.training.precision import Precision
from qcompress.training.run_dir import HEADER, METRICS, check_identity, load_tensors, read_header, save_tensors, write_header
from qcompress.training.step import TrainStep, to_device
from qcompress.training.workspace import RunWorkspace

DEFAULT_SEQ_LEN = 128
SUMMARY = "summary.json"
# the numbers `qcompress fit` prints from a summary; a report lacking one is rewritten rather than trusted
SUMMARY_NUMBERS = ("eval_perplexity", "initial_eval_perplexity", "fraction_of_lora")
WALL_TIME = "seconds"  # metrics key of a step's duration


@dataclass
class FitResult:
    run_dir: Path
    summary: dict | None  # None on the ranks other than 0 of a multi-process fit


def fit_windows_to_context(config: FitConfig, context: int | None) -> FitConfig:
    """Training block and evaluation window: a default longer than the model's context is clamped
    to it (with a note), a length the user gave is checked; the stride defaults to half the window."""
    seq_len, block_note = fit_to_context("--seq-len", config.seq_len, DEFAULT_SEQ_LEN, context)
    eval_seq_len, stride, window_note = eval_window(
        config.eval_seq_len, config.eval_stride, context, ("--eval-seq-len", "--eval-stride")
    )
    for message in (block_note, window_note):
        if message:
            note(message)
    return config.model_copy(update={"seq_len": seq_len, "eval_seq_len": eval_seq_len, "eval_stride": stride})


def check_out_beside_inputs(out: Path, config: FitConfig) -> None:
    """A run written inside its corpus folder would be read as training text by the next fit (its
    circuit.txt), and one written over the model would destroy it: refuse both up front."""
    for flag, spec in (("--data", config.data), ("--eval-data", config.eval_data), ("--model", config.model)):
        path = Path(spec).expanduser() if spec else None
        if path is not None and path.exists() and paths_overlap(out, path):
            raise InputError(f"--out {out} overlaps {flag} {spec}: write the run outside it")


def tokenize_data(corpus: Corpus, config: FitConfig, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Training blocks and the held-out token stream."""
    from qcompress.data import eval_tokens, pack_blocks

    blocks = pack_blocks(corpus.train_texts, tokenizer, config.seq_len)
    held_out = eval_tokens(corpus.eval_texts, tokenizer)[: config.eval_tokens]
    if len(held_out) < 2:
        raise InputError(f"held-out text of {config.data!r} has fewer than 2 tokens: give a longer --eval-data")
    return blocks, held_out


#: the fields a resume may change: where the rest of the run runs, not what it trains
RESUME_PLACEMENT = ("threads", "device")


def _finished_summary(out: Path, config: FitConfig, run_sha256: str) -> dict | None:
    """The summary of a run whose checkpoint is at its last step, or None when there is work left
    (or its summary report no longer parses, in which case the last evaluation is simply redone)."""
    checkpoint = load_checkpoint(out, run_sha256)
    if checkpoint is None or checkpoint.step < config.steps:
        return None
    try:  # a complete run whose trained state was lost is finished again (rewritten from the checkpoint)
        load_tensors(out / get_method(config.method).state_file)
    except InputError:
        return None
    try:
        summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if _is_summary(summary) else None


def _is_summary(value: object) -> bool:
    """Whether a summary report read back still has what ``qcompress fit`` prints, with the right types."""
    if not isinstance(value, dict) or not isinstance(value.get("method"), str) or not isinstance(value.get("counts"), dict):
        return False
    numbers = [value.get(key) for key in SUMMARY_NUMBERS] + [value["counts"].get(key) for key in ("trainable", "lora_equivalent")]
    step_time = value.get("seconds_per_step_median", "missing")  # None when a resume ran no step
    numbers.append(0.0 if step_time is None else step_time)
    return all(isinstance(number, (int, float)) and not isinstance(number, bool) for number in numbers)


def with_wall_times(rows: list[dict], report: Path) -> list[dict]:
    """Checkpointed metrics rows with the step times the ``metrics.jsonl`` report holds for them.

    A checkpoint leaves wall times out (they would make two identical runs' checkpoints differ);
    the report is only consulted for them, never trusted for anything else, and a report that no
    longer parses just means the earlier steps lose their times.
    """
    try:
        times = {row["step"]: row[WALL_TIME] for row in map(json.loads, report.read_text(encoding="utf-8").splitlines())
                 if WALL_TIME in row and "loss" in row}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return rows
    return [{**row, WALL_TIME: times[row["step"]]} if "loss" in row and row["step"] in times else row for row in rows]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit(
    config: FitConfig | None,
    out: Path,
    *,
    resume: bool = False,
    force: bool = False,
    stop_after: int | None = None,
    ignore_model_mismatch: bool = False,
    placement: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``config.method`` on ``config.model`` and write the run directory ``out``.

    With ``resume`` the config may be ``None`` (taken from the run); ``placement`` then changes where
    the rest runs (``threads``, ``device``: :data:`RESUME_PLACEMENT`), never what it trains: the run
    keeps its recorded config and hash. ``stop_after`` ends the loop
    early after that step, with a checkpoint, as an interruption would. A ``force`` over an existing
    run trains in a staging directory and replaces the old run only once the new one is complete.
    Started by ``torchrun``/``accelerate launch``, every process trains a slice of each batch and
    rank 0 alone writes (:mod:`qcompress.training.distributed`); the others return no summary.
    """
    from qcompress.models import load_model

    if placement and (not resume or set(placement) - set(RESUME_PLACEMENT)):
        raise ValueError(f"placement {sorted(placement)} is for a resume, and only of {RESUME_PLACEMENT}")
    processes = Processes.from_environment()
    if config is not None:
        check_out_beside_inputs(Path(out), config)
        # the method section by the method's own config class (a plugin's options too), before anything is written
        get_method_class(config.method).options(config.method_config)
    workspace = RunWorkspace.open(Path(out), resume=resume, force=force) if processes.main else RunWorkspace.follow(Path(out), resume)
    try:
        return _fit(config, workspace, processes, stop_after, ignore_model_mismatch, load_model, placement or {})
    except KeyboardInterrupt:
        raise Interrupted(workspace.interrupted_message()) from None
    finally:
        workspace.close()
        processes.leave()


def prepare_model(adapted: AdaptedModel, config: FitConfig, device: torch.device, precision: Precision) -> list[torch.nn.Parameter]:
    """Put the adapted model on ``device`` in the fit's precision; returns the tensors to train."""
    adapted.to(device)
    params = adapted.trainable_parameters()
    precision.prepare(adapted.model, params)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(adapted.model)
    return params


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each block's activations in the backward pass instead of storing them (the
    non-reentrant form, which needs no input gradients and works under DDP)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise InputError(f"{type(base).__name__} does not support gradient checkpointing: drop --gradient-checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name warns there
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _fit(
    config: FitConfig | None, workspace: RunWorkspace, processes: Processes, stop_after: int | None, ignore_model_mismatch: bool,
    load_model, placement: dict[str, Any],
) -> FitResult:
    out = workspace.out
    header = read_header(out) if workspace.resume else None
    if header is not None:
        config = validated(FitConfig, header["config"], f"config in {out / HEADER}")
        for key, value in placement.items():  # checked by the config's own validators (validate_assignment)
            try:
                setattr(config, key, value)
            except ValidationError as error:
                raise InputError(one_line(error, f"--{key}", f"change --{key}")) from None
        if "device" in placement:  # a device asked for is checked even where the run turns out complete
            resolve_device(config.device)
    if config is None:
        raise InputError("a fit needs a config (or --resume of an existing run)")
    finished = _finished_summary(out, config, header["config_sha256"]) if header is not None else None
    if finished is not None:  # resuming a complete run changes nothing, not even its report's timings
        if processes.main:  # every rank stops here (read only), so none waits for a group the others never join
            note(f"{out} is complete ({config.steps} of {config.steps} steps): nothing to resume")
        workspace.finish()
        return FitResult(out, finished if processes.main else None)
    if config.threads:
        torch.set_num_threads(config.threads)
    # every generator a checkpoint records is seeded, so two identical runs write identical checkpoints
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)

    method = get_method(config.method)
    if config.lr is None:  # record the rate actually used, so the run never depends on a later default
        config = config.model_copy(update={"lr": method.default_lr})
    if config.lr * config.decay_to_init > 1:
        raise InputError(f"--decay-to-init {config.decay_to_init:g} at lr {config.lr:g} would pull past the initial values "
                         f"(lr x decay {config.lr * config.decay_to_init:g} > 1): use at most {1 / config.lr:g}")
    processes.check_batch(config.batch_size)
    device = processes.device(resolve_device(config.device))
    processes.join(device)
    corpus = load_corpus(config.data, config.eval_data)  # before the model: a wrong path fails fast
    loaded = load_model(config.model)
    if header is not None:
        check_identity(header["base_model"], loaded.identity, out, ignore_model_mismatch)
    config = fit_windows_to_context(config, context_length(loaded.model.config.to_dict()))
    # a resumed run keeps the hash its header recorded (checked against its config when read), so
    # fields added to FitConfig since it was written do not orphan its checkpoint
    run_sha256 = header["config_sha256"] if header is not None else config.sha256()
    blocks, held_out = tokenize_data(corpus, config, loaded.tokenizer)
    adapted = method.attach(loaded.model, config)
    precision = Precision(config.precision, device)
    params = prepare_model(adapted, config, device, precision)
    held_out = held_out.to(device)
    counts = adapted.counts()
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_scheduler(config.schedule, optimizer, num_warmup_steps=config.effective_warmup_steps, num_training_steps=config.steps)
    sampler = BlockSampler(blocks, config.batch_size, config.seed)

    run_dir = workspace.start()  # everything loaded: only now is anything written
    if header is None and processes.main:
        write_header(run_dir, config, loaded.identity, counts)
        write_text_atomic(run_dir / "circuit.txt", adapted.describe())
    # the initial values --decay-to-init pulls toward: attach is deterministic, so a resumed run rebuilds them here
    anchors = [param.detach().clone() for param in params] if config.decay_to_init else None
    checkpoint = load_checkpoint(run_dir, run_sha256) if workspace.resume else None
    start, metrics = 0, []
    if checkpoint is not None:
        start, metrics = checkpoint.step, with_wall_times(checkpoint.metrics, run_dir / METRICS)
        adapted.load_trainable_state(checkpoint.trainable)
        checkpoint.restore(optimizer, scheduler, precision.scaler)
    workspace.checkpointed(start if checkpoint is not None else None)
    step = TrainStep(processes.wrap(adapted.model), params, optimizer, scheduler, precision, processes, config.grad_accum,
                     config.max_grad_norm, anchors, config.decay_to_init)

    def evaluate(at: int) -> float:
        with precision.autocast():
            result = perplexity(adapted.model, held_out, config.eval_seq_len, config.eval_stride)
        if metrics and metrics[-1]["step"] == at and "eval_perplexity" in metrics[-1]:
            metrics.pop()  # the final evaluation of a finished run that is resumed again, measured anew
        metrics.append({"step": at, "eval_perplexity": result["perplexity"], "eval_tokens": result["tokens"]})
        return result["perplexity"]

    def save(at: int) -> None:
        # held back until the workspace knows of the checkpoint: a Ctrl-C between the checkpoint landing on
        # disk and this record would have the failure path drop a run with a complete checkpoint as "nothing kept"
        with interrupts_deferred("the checkpoint"):
            if processes.main:
                _checkpoint(run_dir, at, adapted, optimizer, scheduler, precision, method.state_file, metrics, run_sha256)
            workspace.checkpointed(at)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if start == 0 and processes.main:
        evaluate(0)
    tokens_per_step = config.batch_size * config.grad_accum * config.seq_len
    end = min(config.steps, stop_after) if stop_after else config.steps
    adapted.model.train()
    step_times = []
    with tqdm(total=config.steps, initial=start, desc=f"fit {config.method}", unit="step", mininterval=1.0, disable=not processes.main) as progress:
        for index in range(start + 1, end + 1):
            workspace.step = index
            began = time.perf_counter()

            def micro_batch(micro: int, index: int = index) -> torch.Tensor:
                return to_device(processes.shard(sampler.batch((index - 1) * config.grad_accum + micro)), device)

            loss_value = step.backward(micro_batch).item()  # the step's one host sync, after all its micro-batches are queued
            if not math.isfinite(loss_value):
                raise CheckFailed(workspace.diverged_message(loss_value, optimizer.param_groups[0]["lr"]))
            step.update()
            seconds = time.perf_counter() - began
            step_times.append(seconds)
            metrics.append({"step": index, "loss": loss_value, "lr": scheduler.get_last_lr()[0], WALL_TIME: seconds})
            progress.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tokens_per_step / seconds:.0f}")
            progress.update(1)
            if config.eval_every and index % config.eval_every == 0 and index != config.steps and processes.main:
                progress.set_postfix(loss=f"{loss_value:.3f}", ppl=f"{evaluate(index):.2f}")
            if index % config.checkpoint_every == 0 or index == end:
                save(index)
    processes.barrier()  # rank 0's checkpoint is complete before any rank goes on
    if end < config.steps:
        workspace.finish()
        return FitResult(out, {"stopped_at": end})
    if not processes.main:
        workspace.finish()
        return FitResult(out, None)

    final = evaluate(config.steps)
    summary = {
        "method": config.method,
        "model": config.model,
        "data": corpus.description,
        "steps": config.steps,
        "eval_perplexity": final,
        "initial_eval_perplexity": next(m["eval_perplexity"] for m in metrics if "eval_perplexity" in m),
        "counts": counts,
        "fraction_of_lora": counts["trainable"] / counts["lora_equivalent"],
        "seconds_per_step_median": sorted(step_times)[len(step_times) // 2] if step_times else None,
        "tokens_per_step": tokens_per_step,
        "device": str(device),
        "precision": config.precision,
        "processes": processes.world,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }
    plot_curves(metrics, run_dir / "curves.png", f"{config.method} on {config.model}")
    save(config.steps)
    # the summary marks the run finished, so it comes last, with the publication (--force's rename into --out):
    # interrupted before it, the run still resumes from the final checkpoint (and evaluates again)
    with interrupts_deferred("the run's summary"):
        write_json_atomic(run_dir / SUMMARY, summary)
        workspace.finish()
    return FitResult(out, summary)


def _checkpoint(
    run_dir: Path, step: int, adapted: AdaptedModel, optimizer, scheduler, precision: Precision, state_file: str, metrics: list[dict], config_sha256: str
) -> None:
    """Trained state, metrics report and checkpoint (which carries the metrics too), each written
    atomically, the checkpoint last: a run killed in between resumes from the previous checkpoint."""
    trainable = {name: tensor.cpu() for name, tensor in adapted.trainable_state().items()}
    save_tensors(run_dir / state_file, trainable)
    write_text_atomic(run_dir / METRICS, "".join(json.dumps(row) + "\n" for row in metrics))
    deterministic = [{key: value for key, value in row.items() if key != WALL_TIME} for row in metrics]
    save_checkpoint(run_dir, step, trainable, optimizer, scheduler, config_sha256, deterministic, precision.scaler)
