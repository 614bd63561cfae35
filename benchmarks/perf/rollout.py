"""Rollout throughput: recgym's static-cache backend against transformers ``generate``.

For each batch size, the same prompts (plain-text continuations of catalog documents, so rows
rarely end early) are completed with sampling (temperature 0.6, top-p 0.95,
``--max-new-tokens`` tokens) by

- **generate**: ``model.generate(do_sample=True, ...)`` with transformers' defaults (dynamic
  cache, eager Python loop);
- **static+compile** (CUDA only; ``--no-compile`` skips it): ``model.generate`` with
  ``cache_implementation="static"``, which compiles the forward with ``torch.compile``;
- **recgym**: :class:`recgym.llm.static.StaticCacheLLM` (CUDA graphs on CUDA; on CPU its eager
  decoder, forced, for reference only: on CPU ``generate`` falls back to transformers).

Every shape runs once untimed (compilation, graph capture) before the timed runs; the script
prints generated tokens per second (the tokens each row kept, end tokens included), the
median of ``--repeats`` runs, and the ratios of recgym to the others; ``--profile`` adds
torch.profiler's table of one recgym call at the largest batch. Run::

    python -m benchmarks.perf.rollout --batch-sizes 64 256 512 --max-new-tokens 128  # GPU
    python -m benchmarks.perf.rollout --batch-sizes 8 32 --max-new-tokens 32  # CPU
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import torch

import recgym.llm
from recgym.llm.static import StaticCacheLLM

__all__ = ["main", "prompts_from_catalog", "time_tokens"]


def prompts_from_catalog(n: int, words: int = 120) -> list[str]:
    """``n`` plain-text prompts: the first ``words`` words of RecSearch-v0's documents."""
    import gymnasium as gym

    import recgym  # noqa: F401 (registers the env ids)
    from recgym.envs.text import RetrievalTextEnv

    inner = gym.make("RecSearch-v0").unwrapped
    assert isinstance(inner, RetrievalTextEnv)
    docs = [d for d in inner.task.documents if len(d.split()) >= 20]
    return [" ".join(docs[i % len(docs)].split()[:words]) for i in range(n)]


def time_tokens(fn: Callable[[], int], repeats: int, device: torch.device) -> tuple[float, int]:
    """Median seconds of ``repeats`` calls after one untimed call, and the tokens of the last."""

    def run() -> tuple[float, int]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        tokens = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, tokens

    run()
    results = [run() for _ in range(repeats)]
    return statistics.median(t for t, _ in results), results[-1][1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="a recgym.llm model name/path")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--device", default=None, help="default: CUDA when available")
    parser.add_argument("--no-compile", action="store_true", help="skip static cache + compile")
    parser.add_argument(
        "--profile", action="store_true", help="torch.profiler table of one recgym call"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    llm = recgym.llm.load(args.model, device=str(device), progress=False)
    assert isinstance(llm, recgym.llm.HFLLM)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(
        f"device: {name} ({os.cpu_count()} CPUs); torch {torch.__version__}, transformers "
        f"{version('transformers')}; {llm.name} in {llm.model.dtype}; "
        f"{args.max_new_tokens} new tokens, temperature 0.6, top-p 0.95"
    )
    fast = StaticCacheLLM(llm, force=True)
    tok, model = llm.tokenizer, llm.model
    sampling = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": None}

    def hf(texts: list[str], **extra: object) -> int:
        enc = tok(texts, return_tensors="pt", padding=True, padding_side="left").to(device)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=args.max_new_tokens,
                pad_token_id=llm.pad_id,
                eos_token_id=llm.eos_ids,
                **sampling,
                **extra,
            )
        new = out[:, enc["input_ids"].shape[1] :].tolist()
        return sum(len(llm.to_generation(row, "", None).token_ids) for row in new)

    def ours(texts: list[str]) -> int:
        gens = fast.generate(
            texts,
            max_new_tokens=args.max_new_tokens,
            temperature=0.6,
            top_p=0.95,
            seed=0,
            chat=False,
        )
        return sum(len(g.token_ids) for g in gens)

    for batch in args.batch_sizes:
        texts = prompts_from_catalog(batch)
        ways: dict[str, Callable[[], int]] = {
            "generate": lambda t=texts: hf(t),  # type: ignore[misc]
            "recgym": lambda t=texts: ours(t),  # type: ignore[misc]
        }
        if device.type == "cuda" and not args.no_compile:
            ways["static+compile"] = lambda t=texts: hf(t, cache_implementation="static")  # type: ignore[misc]
        rates = {}
        print(f"\nbatch {batch}:")
        for way, fn in ways.items():
            seconds, tokens = time_tokens(fn, args.repeats, device)
            rates[way] = tokens / seconds
            print(
                f"  {way:<15} {tokens:>7} tokens in {seconds:7.3f} s: {rates[way]:>9.0f} tokens/s"
            )
        ratios = ", ".join(
            f"vs {w} {rates['recgym'] / r:.2f}x" for w, r in rates.items() if w != "recgym"
        )
        print(f"  recgym {ratios}")
    if args.profile:
        profile(lambda: ours(prompts_from_catalog(max(args.batch_sizes))), device)


def profile(fn: Callable[[], object], device: torch.device) -> None:
    """Print the operators that took the most device (CUDA) or CPU time in one ``fn()`` call."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch_profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(f"\nprofile of one recgym call (by {key}):")
    print(prof.key_averages().table(sort_by=key, row_limit=15))


if __name__ == "__main__":
    main()
