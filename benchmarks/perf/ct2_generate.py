"""CPU generation: the CTranslate2 backend against transformers ``generate``, side by side.

The prompts are the zero-shot policy's real inputs: RecSearch-v0 test observations in Rec-R1's
conversation (:func:`agents.llm.zero_shot.policy_messages`). For each batch size and completion
budget, every backend completes the same prompts through :meth:`recgym.llm.LLM.generate` with
the zero-shot agent's sampling (temperature 0.6, top-p 0.95): tokenization, the chat template
and decoding are timed too, as an evaluation pays for them. Reported: generated tokens per
second (the tokens each row kept), the median of ``--repeats`` runs, and each backend's ratio
to ``generate``; every backend first completes a small batch untimed (loading, first calls).

Then the agreement of greedy decoding with transformers in float32, on ``--agree`` prompts
with ``--agree-tokens`` new tokens: the share of completions that are token for token the
same, and the mean share of a completion's tokens before its first difference. Run::

    python -m benchmarks.perf.ct2_generate                       # the issue's grid
    python -m benchmarks.perf.ct2_generate --batch-sizes 8 --max-new-tokens 16 --agree 8
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

__all__ = ["agreement", "main", "policy_prompts"]


def policy_prompts(n: int) -> list[list[dict[str, str]]]:
    """``n`` zero-shot policy conversations from RecSearch-v0's test episodes (cycled)."""
    import gymnasium as gym

    import recgym  # noqa: F401 (registers the env ids)
    from agents.llm.zero_shot import policy_messages
    from recgym.envs.text import SYSTEM_PROMPT

    env = gym.make("RecSearch-v0", split="test")
    out = []
    for i in range(n):
        obs, _ = env.reset(options={"index": i % 500})
        out.append(policy_messages(str(obs), SYSTEM_PROMPT))
    env.close()
    return out


def agreement(ref: list[list[int]], got: list[list[int]]) -> tuple[float, float]:
    """(share of rows with the same tokens, mean share of a reference row's tokens before the
    first difference)."""
    same, prefix = 0, []
    for a, b in zip(ref, got, strict=True):
        same += a == b
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        prefix.append(k / max(len(a), 1))
    return same / len(ref), statistics.fmean(prefix)


def _timed(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = fn()
        runs.append((time.perf_counter() - start, tokens))
    return statistics.median(t for t, _ in runs), runs[-1][1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="a recgym.llm model name/path")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--max-new-tokens", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (median reported)")
    parser.add_argument("--agree", type=int, default=64, help="prompts for the agreement check")
    parser.add_argument("--agree-tokens", type=int, default=64)
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for every backend (default: all)"
    )
    args = parser.parse_args(argv)

    import torch

    import recgym.llm

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    hf = recgym.llm.load(args.model, device="cpu", progress=False)
    backends: dict[str, Any] = {
        "generate": hf,
        "ct2-int8": recgym.llm.load(args.model, backend="ct2", threads=threads),
        "ct2-float32": recgym.llm.load(
            args.model, backend="ct2", quantization="float32", threads=threads
        ),
    }
    print(
        f"device: {platform.processor() or platform.machine()}, {threads} threads "
        f"({os.cpu_count()} CPUs); torch {torch.__version__}, transformers "
        f"{version('transformers')}, ctranslate2 {version('ctranslate2')}; {args.model}; "
        "zero-shot sampling (temperature 0.6, top-p 0.95)"
    )
    prompts = policy_prompts(max([*args.batch_sizes, args.agree]))
    for llm in backends.values():  # warm up: first-call costs are not throughput
        llm.generate(prompts[:4], max_new_tokens=8, temperature=0.6, top_p=0.95, seed=0)
    print(
        "\n| batch | new tokens | "
        + " | ".join(f"{b} tokens/s" for b in backends)
        + " | "
        + " | ".join(f"{b} vs generate" for b in backends if b != "generate")
        + " |"
    )
    print("|---:|---:|" + "---:|" * (2 * len(backends) - 1))
    for new_tokens in args.max_new_tokens:
        for batch in args.batch_sizes:
            rows = prompts[:batch]
            rates = {}
            for name, llm in backends.items():

                def run(llm: Any = llm, rows: list[Any] = rows, n: int = new_tokens) -> int:
                    gens = llm.generate(rows, max_new_tokens=n, temperature=0.6, top_p=0.95, seed=0)
                    return sum(len(g.token_ids) for g in gens)

                seconds, tokens = _timed(run, args.repeats)
                rates[name] = tokens / seconds
            ratios = [rates[b] / rates["generate"] for b in backends if b != "generate"]
            print(
                f"| {batch} | {new_tokens} | "
                + " | ".join(f"{r:.0f}" for r in rates.values())
                + " | "
                + " | ".join(f"{x:.2f}x" for x in ratios)
                + " |",
                flush=True,
            )

    rows = prompts[: args.agree]
    ref = [g.token_ids for g in hf.generate(rows, max_new_tokens=args.agree_tokens)]
    print(
        f"\ngreedy agreement with transformers float32 ({len(rows)} prompts, "
        f"{args.agree_tokens} new tokens):"
    )
    for name, llm in backends.items():
        if name == "generate":
            continue
        got = [g.token_ids for g in llm.generate(rows, max_new_tokens=args.agree_tokens)]
        exact, prefix = agreement(ref, got)
        print(f"  {name:<12} exact {exact:.1%}, tokens before the first difference {prefix:.1%}")


if __name__ == "__main__":
    main()
