"""Performance benchmarks: each script measures its comparisons side by side in one run and
prints the ratios (they are benchmarks, not tests; the tests only smoke-run them).

- :mod:`benchmarks.perf.reward_sweep`: scoring one GRPO batch of completions with NDCG@1000
  over corpora of 10k to 1M documents, the recgym scorer against loops over rank-bm25 and bm25s.
- :mod:`benchmarks.perf.rollout`: rollout tokens/s of the static-cache generation backend
  against transformers ``generate``.
"""
