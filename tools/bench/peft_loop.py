"""The reference the train suite holds ``qcompress fit --method lora`` to: a bare PEFT LoRA loop.

Same model, targets, rank, batch, sequence length, device and precision as the fit, with nothing
around it: ``get_peft_model``, AdamW, random token blocks, forward, backward, step. Prints one JSON
line: the median seconds per step (after warm-up) and the peak GPU memory.

    python tools/bench/peft_loop.py --model DIR --batch-size 4 --seq-len 128 --steps 8 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="local Hugging Face model directory")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from qcompress.models import default_target_modules, is_conv1d_model  # the fit's own defaults

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16 if args.precision == "bf16" else torch.float32)
    targets = default_target_modules(model)
    config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=targets, task_type="CAUSAL_LM",
                        fan_in_fan_out=is_conv1d_model(model, targets))
    model = get_peft_model(model, config).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)
    vocab = model.config.vocab_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(args.steps + 2):
        batch = torch.randint(0, vocab, (args.batch_size, args.seq_len), device=device)
        began = time.perf_counter()
        with autocast:
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the same one sync per step as qcompress fit
        if step >= 2:
            times.append(time.perf_counter() - began)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    print(json.dumps({"seconds_per_step": statistics.median(times), "peak_gpu_mb": peak, "tokens_per_step": args.batch_size * args.seq_len}))


if __name__ == "__main__":
    main()
