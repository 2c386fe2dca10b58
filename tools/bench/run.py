"""qcompress benchmark suites: one entry point, each suite writing <suite>.json and <suite>.md into --out.

    python tools/bench/run.py generator                     # fast: minutes on 2 CPU cores
    python tools/bench/run.py generator train --out runs/bench
    python tools/bench/run.py deploy                        # slow: exports the default model twice
    python tools/bench/run.py quality                       # long: 10 variants x 3 seeds x 100-step fits (hours)
    python tools/bench/run.py sweep --out tools/bench/results --jobs 2   # the fair sweep (days on 2 CPU cores, hours on a GPU)
    python tools/bench/run.py sweep --out tools/bench/results --merge A.json B.json   # parts run apart, as one report

Suites: generator (QPA circuit simulators), train (s/step and peak RSS of lora, qpa-lora, qtha),
deploy (ONNX Runtime vs merged PyTorch vs unmerged PEFT), quality (perplexity vs trainable
parameters over seeds, with the classical ablation of the circuit), sweep (the fair protocol: every
variant at its own learning rate chosen on a validation split, then test and out-of-domain
perplexity over seeds; tools/bench/sweep.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the suites import their siblings by name

import deploy  # noqa: E402
import generator  # noqa: E402
import quality  # noqa: E402
import sweep  # noqa: E402
import sweep_merge  # noqa: E402
import train  # noqa: E402
from qcompress.training.device import resolve_device  # noqa: E402

SUITES = ["generator", "train", "deploy", "quality", "sweep"]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suites", nargs="+", choices=SUITES, help="suites to run, in order")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder for <suite>.json/.md/.png")
    parser.add_argument("--device", default="auto", help="torch device for fits and the generator suite: auto (a GPU when present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 lets two streams share 2 cores)")
    group = parser.add_argument_group("generator")
    group.add_argument("--qubits", type=int, nargs="+", default=[8, 12, 16, 20], help="circuit widths N")
    group.add_argument("--depth", type=int, default=8, help="circuit blocks L")
    group.add_argument("--repeats", type=int, default=20, help="timed steps per simulator and N (at most)")
    group.add_argument("--max-step-s", type=float, default=5.0, help="skip a simulator from the N where one step exceeds this")
    group.add_argument("--budget-s", type=float, default=20.0, help="cut a simulator's repeats to about this many seconds per N")
    group = parser.add_argument_group("train, quality (qcompress fit subprocesses)")
    group.add_argument("--model", default="smollm2-135m", help="base model for train, deploy and quality")
    group.add_argument("--data", default="austen", help="corpus for train and quality")
    group.add_argument("--train-steps", type=int, default=10, help="train: optimizer steps per run")
    group.add_argument("--rounds", type=int, default=2, help="train: round-robin rounds over the methods")
    group.add_argument("--methods", nargs="+", default=list(train.METHODS), choices=list(train.METHODS),
                       help="train: methods to time (with lora, a bare PEFT loop is timed too)")
    group.add_argument("--shapes", nargs="+", default=["4x128"], help="train: batch shapes BLOCKSxTOKENS, e.g. 4x128 16x512")
    group.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="train: qcompress fit --precision")
    group.add_argument("--quality-steps", type=int, default=100, help="quality: optimizer steps per fit")
    group.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="quality: seeds per variant")
    group.add_argument("--variants", nargs="+", default=list(quality.VARIANTS), choices=list(quality.VARIANTS),
                       help="quality: variants to fit")
    group.add_argument("--fit-args", nargs=argparse.REMAINDER, default=[], help="flags appended to every fit (must be last)")
    group = parser.add_argument_group("sweep (--model, --seeds and --fit-args as above)")
    group.add_argument("--sweep-steps", type=int, nargs="+", default=[100, 300], help="sweep: step budgets, each tuned on its own")
    group.add_argument("--lr-grid", type=float, nargs="+", default=list(sweep.LR_GRID), help="sweep: learning rates tried for every variant")
    group.add_argument("--max-extensions", type=int, default=sweep.MAX_EXTENSIONS,
                       help="sweep: grid steps added past an edge when the best rate sits there")
    group.add_argument("--sweep-variants", nargs="+", choices=list(sweep.VARIANTS),
                       help="sweep: variants to tune and report (default: all); with --merge, the rows to keep (default: all)")
    group.add_argument("--jobs", type=int, default=1, help="sweep: fits run in parallel (CPU cores are split between them)")
    group.add_argument("--train-data", default=sweep.TRAIN_DATA, help="sweep: training corpus; its held-out part is the validation split")
    group.add_argument("--test-data", default=sweep.TEST_DATA, help="sweep: the reported in-domain text (never used to choose)")
    group.add_argument("--ood-data", default=sweep.OOD_DATA, help="sweep: the out-of-domain text no fit trains on")
    group.add_argument("--report-only", action="store_true",
                       help="sweep: tabulate the fits finished so far, start none (an interim report of a long sweep)")
    group.add_argument("--merge", type=Path, nargs="+", metavar="SWEEP_JSON",
                       help="sweep: fit nothing; join these reports of sweeps run apart under one protocol (refused if "
                            "model, seeds, grid, texts, flags, device or base figures differ) into --out; the parts' "
                            "own settings are reported, so the other sweep options do not apply")
    group = parser.add_argument_group("deploy (tools/bench_deploy.py)")
    group.add_argument("--new-tokens", type=int, default=48, help="greedy tokens generated per prompt")
    group.add_argument("--deploy-repeats", type=int, default=2, help="passes over the prompts per runner")
    group.add_argument("--reuse", action="store_true", help="reuse the artifacts already exported into --out")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.merge and (args.suites != ["sweep"] or args.report_only):
        raise SystemExit("error: --merge joins finished sweep reports and runs nothing: use it as `run.py sweep --merge "
                         "A.json B.json` alone, without other suites or --report-only")
    args.device = str(resolve_device(args.device))  # "auto" -> the device actually used, recorded in every suite
    for suite in args.suites:
        if suite == "generator":
            generator.run(args.out, args.qubits, args.depth, args.device, args.repeats, args.max_step_s,
                          args.budget_s, args.threads)
        elif suite == "train":
            train.run(args.out, args.model, args.data, args.train_steps, args.rounds, args.threads, args.device,
                      args.fit_args, args.methods, args.shapes, args.precision)
        elif suite == "deploy":
            deploy.run(args.out, args.model, args.new_tokens, args.deploy_repeats, args.threads, args.device, args.reuse)
        elif suite == "sweep" and args.merge:
            sweep_merge.run(args.out, args.merge, args.sweep_variants)
        elif suite == "sweep":
            sweep.run(sweep.Settings(
                out=args.out, model=args.model, steps=args.sweep_steps, seeds=args.seeds,
                variants=args.sweep_variants or list(sweep.VARIANTS),
                lr_grid=args.lr_grid, jobs=args.jobs, device=args.device, train_data=args.train_data, test_data=args.test_data,
                ood_data=args.ood_data, fit_args=args.fit_args, max_extensions=args.max_extensions,
                report_only=args.report_only))
        else:
            quality.run(args.out, args.model, args.data, args.quality_steps, args.seeds, args.variants, args.threads,
                        args.device, args.fit_args)


if __name__ == "__main__":
    main()
