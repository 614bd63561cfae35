"""Where a GRPO step's time goes: generation, reward scoring and the policy update.

Runs ``--steps`` GRPO steps of :class:`agents.llm.grpo.GRPOTrainer` (no validation) on a text
env, after one untimed step (graph capture, kernel loading), and prints the mean seconds of
each part from the trainer's log and scoring's share of the step. On CUDA the rollouts come
from :class:`recgym.llm.static.StaticCacheLLM`; ``--slow-generation`` uses transformers'
``generate`` instead. Run::

    python -m benchmarks.perf.grpo_step --env RecSeq-v0 --prompts 32 --group 12 \\
        --max-new-tokens 128 --steps 5          # GPU, Rec-R1's batch
    python -m benchmarks.perf.grpo_step --prompts 4 --group 4 --max-new-tokens 32 --steps 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from agents.llm.grpo import GRPOConfig, GRPOTrainer

__all__ = ["PARTS", "main"]

PARTS = ("generation_seconds", "scoring_seconds", "update_seconds")
RESPONSE_PREFIX = '<answer>{"query": "'
"""The reply prefix of the GRPO runs in docs/guides/grpo.md."""


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="RecSeq-v0")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=32, help="prompts per step")
    parser.add_argument("--group", type=int, default=12, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--micro-batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument(
        "--response-prefix",
        default=RESPONSE_PREFIX,
        help="start of every reply (without it SmolLM2-135M's completions are "
        "all malformed: nothing to retrieve, nothing to update)",
    )
    parser.add_argument(
        "--slow-generation",
        action="store_true",
        help="sample with transformers' generate on CUDA too",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            env=args.env,
            model=args.model,
            prompts_per_step=args.prompts,
            samples_per_prompt=args.group,
            max_new_tokens=args.max_new_tokens,
            micro_batch_size=args.micro_batch_size,
            max_steps=args.steps + 1,
            fast_generation=not args.slow_generation,
            output_dir=out,
            progress=False,
            response_prefix=args.response_prefix,
        )
        trainer = GRPOTrainer(config)
        trainer.begin()
        device = trainer.device
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        generator = type(trainer.generator).__name__
        print(
            f"{args.env}, {args.model} ({where}, rollouts by {generator}): {args.prompts} "
            f"prompts x {args.group} completions, {args.max_new_tokens} new tokens"
        )
        trainer.step()  # untimed: graph capture, kernel loading, the scorer's first batch
        records = [trainer.step() for _ in range(args.steps)]
    means = {part: statistics.mean(r[part] for r in records) for part in PARTS}
    total = sum(means.values())
    tokens = statistics.mean(r["completion_tokens"] for r in records)
    for part, seconds in means.items():
        print(f"  {part.removesuffix('_seconds'):<11} {seconds:8.3f} s  {seconds / total:6.1%}")
    well_formed = statistics.mean(r["format_ok"] for r in records)
    share = means["scoring_seconds"] / total
    print(
        f"  step        {total:8.3f} s; mean completion {tokens:.1f} tokens, "
        f"{well_formed:.0%} well-formed; scoring share {share:.1%}"
    )
    return means


if __name__ == "__main__":
    main()
