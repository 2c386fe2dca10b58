"""The whole ``qcompress fit`` loop, readable in one sitting (no framework where a loop will do)."""

from __future__ import annotations

import json
import math
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from qcompress.config import validated
from qcompress.data import Corpus, load_corpus
from qcompress.atomic import write_json_atomic, write_text_atomic
from qcompress.errors import CheckFailed, InputError
from qcompress.methods import AdaptedModel, get_method
from qcompress.training.batches import BlockSampler
from qcompress.training.checkpoint import load_checkpoint, restore_rng, save_checkpoint
from qcompress.training.config import FitConfig
from qcompress.training.device import resolve_device
from qcompress.training.evaluate import perplexity
from qcompress.training.plots import plot_curves
from qcompress.training.run_dir import HEADER, read_header, save_tensors, write_header

METRICS = "metrics.jsonl"


@dataclass
class FitResult:
    run_dir: Path
    summary: dict


def check_run_dir(out: Path, resume: bool, force: bool) -> None:
    """Refuse an unusable --out before any work; nothing is written or removed here."""
    if resume:
        read_header(out)
        return
    if out.exists() and any(out.iterdir()):
        if not force:
            raise InputError(f"{out} already exists and is not empty: choose another --out, add --resume, or --force")
        if not (out / HEADER).is_file():
            raise InputError(f"refusing to --force over {out}: it is not a qcompress run directory")


def start_run_dir(out: Path) -> None:
    """Empty (a --force over a checked run) and create --out, only once the model, data and method have loaded:
    a bad input must not cost the user the run they asked to replace."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def tokenize_data(corpus: Corpus, config: FitConfig, tokenizer, context: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training blocks and the held-out token stream, after checking both fit the model's context."""
    from qcompress.data import eval_tokens, pack_blocks

    for name, length in (("seq_len", config.seq_len), ("eval_seq_len", config.eval_seq_len)):
        if context is not None and length > context:
            raise InputError(f"{name} {length} is longer than the model's context ({context} tokens): lower it")
    blocks = pack_blocks(corpus.train_texts, tokenizer, config.seq_len)
    held_out = eval_tokens(corpus.eval_texts, tokenizer)[: config.eval_tokens]
    if len(held_out) < 2:
        raise InputError(f"held-out text of {config.data!r} has fewer than 2 tokens: give a longer --eval-data")
    return blocks, held_out


def _metrics_until(path: Path, step: int) -> list[dict]:
    """Metrics recorded up to ``step`` (a resumed run rewrites what came after its checkpoint)."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["step"] <= step]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit(
    config: FitConfig | None, out: Path, *, resume: bool = False, force: bool = False, stop_after: int | None = None
) -> FitResult:
    """Train ``config.method`` on ``config.model`` and write the run directory ``out``.

    With ``resume`` the config may be ``None`` (taken from the run). ``stop_after`` ends the loop
    early after that step, with a checkpoint, as an interruption would.
    """
    from qcompress.models import load_model

    out = Path(out)
    check_run_dir(out, resume, force)
    if config is None:
        if not resume:
            raise InputError("a fit needs a config (or --resume of an existing run)")
        config = validated(FitConfig, read_header(out)["config"], f"config in {out / HEADER}")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)

    method = get_method(config.method)
    if config.lr is None:  # record the rate actually used, so the run never depends on a later default
        config = config.model_copy(update={"lr": method.default_lr})
    device = resolve_device(config.device)
    corpus = load_corpus(config.data, config.eval_data)  # before the model: a wrong path fails fast
    loaded = load_model(config.model)
    context = getattr(loaded.model.config, "max_position_embeddings", None) or getattr(loaded.model.config, "n_positions", None)
    blocks, held_out = tokenize_data(corpus, config, loaded.tokenizer, context)
    adapted = method.attach(loaded.model, config)
    adapted.model.to(device)
    held_out = held_out.to(device)
    counts = adapted.counts()
    if resume:
        header = read_header(out)
        if header["config_sha256"] != config.sha256():
            raise InputError(f"--resume with a different config than {out / HEADER} records: drop the changed flags")
    else:
        start_run_dir(out)
        write_header(out, config, loaded.identity, counts)
        write_text_atomic(out / "circuit.txt", adapted.describe())

    params = adapted.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_scheduler(config.schedule, optimizer, num_warmup_steps=config.effective_warmup_steps, num_training_steps=config.steps)
    sampler = BlockSampler(blocks.to(device), config.batch_size, config.seed)

    start = 0
    if resume:
        start, trainable, state = load_checkpoint(out)
        adapted.load_trainable_state(trainable)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state)
    metrics = _metrics_until(out / METRICS, start)

    def evaluate(step: int) -> float:
        result = perplexity(adapted.model, held_out, config.eval_seq_len, config.eval_stride)
        metrics.append({"step": step, "eval_perplexity": result["perplexity"], "eval_tokens": result["tokens"]})
        return result["perplexity"]

    if start == 0:
        evaluate(0)
    last_checkpoint = start
    tokens_per_step = config.batch_size * config.grad_accum * config.seq_len
    end = min(config.steps, stop_after) if stop_after else config.steps
    adapted.model.train()
    progress = tqdm(total=config.steps, initial=start, desc=f"fit {config.method}", unit="step", mininterval=1.0)
    step_times = []
    for step in range(start + 1, end + 1):
        began = time.perf_counter()
        loss_sum = 0.0
        for micro in range(config.grad_accum):
            batch = sampler.batch((step - 1) * config.grad_accum + micro)
            loss = adapted.model(input_ids=batch, labels=batch).loss / config.grad_accum
            if not torch.isfinite(loss):
                progress.close()
                raise CheckFailed(
                    f"loss became {loss.item()} at step {step}: lower --lr (now {optimizer.param_groups[0]['lr']:.3g}) "
                    f"or check the data; the checkpoint of step {last_checkpoint} in {out} is intact (--resume continues it)"
                )
            loss.backward()
            loss_sum += loss.item()
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - began
        step_times.append(seconds)
        metrics.append({"step": step, "loss": loss_sum, "lr": scheduler.get_last_lr()[0], "seconds": seconds})
        progress.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tokens_per_step / seconds:.0f}")
        progress.update(1)
        if config.eval_every and step % config.eval_every == 0 and step != config.steps:
            progress.set_postfix(loss=f"{loss_sum:.3f}", ppl=f"{evaluate(step):.2f}")
        if step % config.checkpoint_every == 0 or step == end:
            _checkpoint(out, step, adapted, optimizer, scheduler, method.state_file, metrics)
            last_checkpoint = step
    progress.close()
    if end < config.steps:
        return FitResult(out, {"stopped_at": end})

    final = evaluate(config.steps)
    _checkpoint(out, config.steps, adapted, optimizer, scheduler, method.state_file, metrics)
    summary = {
        "method": config.method,
        "model": config.model,
        "data": corpus.description,
        "steps": config.steps,
        "eval_perplexity": final,
        "initial_eval_perplexity": next(m["eval_perplexity"] for m in metrics if "eval_perplexity" in m),
        "counts": counts,
        "fraction_of_lora": counts["trainable"] / counts["lora_equivalent"],
        "seconds_per_step_median": sorted(step_times)[len(step_times) // 2] if step_times else math.nan,
        "tokens_per_step": tokens_per_step,
        "device": str(device),
        "peak_rss_mb": _peak_rss_mb(),
    }
    write_json_atomic(out / "summary.json", summary)
    plot_curves(metrics, out / "curves.png", f"{config.method} on {config.model}")
    return FitResult(out, summary)


def _checkpoint(out: Path, step: int, adapted: AdaptedModel, optimizer, scheduler, state_file: str, metrics: list[dict]) -> None:
    """Trained state + checkpoint + metrics, each written atomically, in that order."""
    trainable = {name: tensor.cpu() for name, tensor in adapted.trainable_state().items()}
    save_tensors(out / state_file, trainable)
    save_checkpoint(out, step, trainable, optimizer, scheduler)
    write_text_atomic(out / METRICS, "".join(json.dumps(row) + "\n" for row in metrics))
