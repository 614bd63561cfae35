"""recgym's benchmarks: the leaderboard machinery, performance scripts and studies.

- The leaderboard (this package): :mod:`benchmarks.runner` evaluates an agent into a row
  (multi-step envs through :mod:`benchmarks.episodes`), :mod:`benchmarks.store` keeps the rows,
  :mod:`benchmarks.table`, :mod:`benchmarks.page` and :mod:`benchmarks.report` render them,
  :mod:`benchmarks.demo` is the README's demo; ``python -m benchmarks`` runs them all.
- :mod:`benchmarks.perf`: throughput and timing scripts (``python -m benchmarks.perf.<name>``).
- :mod:`benchmarks.studies`: one-off experiments with their own protocol and result files
  (``python -m benchmarks.studies.<name>``).
"""

from __future__ import annotations

from recgym.utils.moved import alias_modules

# The scripts that lived at the top of the package (issue 23): the old paths, and
# ``python -m`` of them, keep working for one release with a DeprecationWarning.
alias_modules(
    {
        "benchmarks.bm25_throughput": "benchmarks.perf.bm25_throughput",
        "benchmarks.recuser_throughput": "benchmarks.perf.recuser_throughput",
        "benchmarks.reward_scoring": "benchmarks.perf.reward_scoring",
        "benchmarks.recpo_refresh_bias": "benchmarks.studies.recpo_refresh_bias",
        "benchmarks.recpref_lift": "benchmarks.studies.recpref_lift",
        "benchmarks.recuser_sb3": "benchmarks.studies.recuser_sb3",
        "benchmarks.rl4rec_ablation": "benchmarks.studies.rl4rec_ablation",
        "benchmarks.seqrec": "benchmarks.studies.seqrec",
    }
)
