"""Performance benchmarks: each script measures its comparisons side by side in one run and
prints the ratios (they are benchmarks, not tests; the tests only smoke-run them).

- :mod:`benchmarks.perf.bm25_throughput`: BM25 queries per second, the bm25s backend against
  the rank-bm25 reference.
- :mod:`benchmarks.perf.grpo_step`: where a GRPO step's time goes (generation, reward scoring,
  the policy update).
- :mod:`benchmarks.perf.long_run_memory`: memory at the start and the end of a million
  ``RecUser-v0`` steps and 100,000 ``RecSearch-v0`` steps (growth must stay under 5 %).
- :mod:`benchmarks.perf.recuser_throughput`: ``RecUser-v0`` user-steps per second, the batched
  vector env against N single envs.
- :mod:`benchmarks.perf.reward_scoring`: reward scoring of one GRPO step, the env's batched
  scorer against one ``step`` per completion.
- :mod:`benchmarks.perf.reward_sweep`: scoring one GRPO batch of completions with NDCG@1000
  over corpora of 10k to 1M documents, the recgym scorer against loops over rank-bm25 and bm25s.
- :mod:`benchmarks.perf.rollout`: rollout tokens/s of the static-cache generation backend
  against transformers ``generate``.
"""
