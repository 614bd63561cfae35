"""Studies: one-off experiments that answer one question each, with their own protocol and
result files (not leaderboard rows, which only :mod:`benchmarks.runner` writes). Each runs as
``python -m benchmarks.studies.<name>``.

- :mod:`benchmarks.studies.recpo_refresh_bias`: does RecPO's partial item refresh bias its
  train reward?
- :mod:`benchmarks.studies.recpref_lift`: what an LLM's preference texts add to
  ``RecPref-v0``'s recommender, paired per user.
- :mod:`benchmarks.studies.recuser_sb3`: Stable-Baselines3 agents trained on ``RecUser-v0``
  against random and popularity.
- :mod:`benchmarks.studies.rl4rec_ablation`: which LLM-environment input helps SQN and SA2C.
- :mod:`benchmarks.studies.seqrec`: SASRec, GRU4Rec and LRURec against popularity on
  MovieLens-100k (``benchmarks/results/seqrec.json``).
"""
