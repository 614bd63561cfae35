"""Stable-Baselines3 training that a kill does not lose: checkpoints and bit-exact resume.

SB3's own ``CheckpointCallback`` saves the model every N steps, but a run loaded from it does
not go on as the uninterrupted run would: the environments restart, the random generators are
seeded again and the replay buffer is empty. :class:`TrainingCheckpoint` saves, at the start of
a rollout (the policy updated, no transition half stored), everything the rest of the run reads:

- the model with its optimizer, counters and last observation (``model.zip``);
- an off-policy model's replay buffer (``replay.pkl``);
- the vector env, pickled: the users in their episodes with their generators;
- the global torch, NumPy and Python generators and the action space's (epsilon-greedy draws).

The folder is replaced whole (:mod:`recgym.utils.checkpoint`). :func:`resume_or_start` builds a
new model or loads the saved one; learning the same total number of steps then ends with the
weights of an uninterrupted run, bit for bit on CPU. The env must pickle (``RecUserVecEnv``
does: its user model stays in a per-process cache)::

    model, learn, _ = resume_or_start(folder, {"algo": "PPO", "seed": 0}, build, PPO, 5.0)
    learn(100_000)
"""

from __future__ import annotations

import pickle
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from recgym.utils.checkpoint import load_state, note_resume, save_state

__all__ = ["TrainingCheckpoint", "resume_or_start"]


class TrainingCheckpoint(BaseCallback):
    """Saves the training state into ``folder`` at a rollout's start, once ``minutes`` passed
    since the last save (0: at every rollout).

    Args:
        folder: the checkpoint folder (replaced whole at each save).
        config: the run's configuration, saved with the state and checked on resume.
        minutes: the interval between two saves.
        seconds_before: training seconds of the runs before a resume (saved on).
    """

    def __init__(
        self,
        folder: Path,
        config: Mapping[str, Any],
        minutes: float,
        seconds_before: float = 0.0,
    ) -> None:
        super().__init__()
        self.folder = folder
        self.run_config = dict(config)
        self.interval = 60.0 * minutes
        self.seconds_before = seconds_before
        self._started = self._last = time.perf_counter()
        self._saved_at = -1

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        # Here the last rollout is trained on and the next not begun: the state is whole.
        steps = self.model.num_timesteps
        due = time.perf_counter() - self._last >= self.interval
        if steps > 0 and steps != self._saved_at and due:
            self.save()

    def save(self) -> None:
        """Save the state now."""
        model = self.model

        def files(folder: Path) -> None:
            model.save(folder / "model.zip")
            if isinstance(model, OffPolicyAlgorithm):
                model.save_replay_buffer(folder / "replay.pkl")

        state = {
            "env": pickle.dumps(model.get_env()),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "action_space_rng": model.action_space.np_random.bit_generator.state,
            "num_timesteps": model.num_timesteps,
            "seconds": self.seconds_before + time.perf_counter() - self._started,
        }
        save_state(self.folder, state, self.run_config, files)
        self._last, self._saved_at = time.perf_counter(), model.num_timesteps


def resume_or_start(
    folder: Path,
    config: Mapping[str, Any],
    build: Callable[[], Any],
    algo: type[Any],
    minutes: float = 5.0,
    callbacks: Sequence[Any] = (),
) -> tuple[Any, Callable[[int], Any], float]:
    """The model to train, from ``folder``'s checkpoint if there is one, else ``build()``.

    Args:
        folder: the checkpoint folder.
        config: the run's configuration (a checkpoint of another one is refused).
        build: makes the model of a new run (with its env and seed).
        algo: the model's class (``PPO``...), which loads a saved one.
        minutes: the interval between two saves.
        callbacks: more SB3 callbacks for ``learn`` (after the checkpoint's).

    Returns:
        The model; ``learn(total_timesteps)``, which trains it up to ``total_timesteps`` steps
        in all (a resumed model the steps it lacks) and checkpoints on the way; and the
        training seconds of the runs before the resume.

    Raises:
        ValueError: ``folder`` holds the checkpoint of another configuration.
    """
    saved = load_state(folder, config, "SB3 training")
    if saved is None:
        model = build()
        before = 0.0
    else:
        note_resume(f"the {algo.__name__} training in {folder} at step {saved['num_timesteps']}")
        env = pickle.loads(saved["env"])
        # Loaded without the env: SB3 would seed it again; it is attached as it was saved.
        model = algo.load(folder / "model.zip", device="cpu")
        model.set_env(env, force_reset=False)
        if isinstance(model, OffPolicyAlgorithm):
            model.load_replay_buffer(folder / "replay.pkl")
        # Last: loading seeds the global generators again.
        torch.set_rng_state(saved["torch_rng"])
        np.random.set_state(saved["numpy_rng"])
        random.setstate(saved["python_rng"])
        model.action_space.np_random.bit_generator.state = saved["action_space_rng"]
        before = float(saved["seconds"])
    callback = CallbackList([TrainingCheckpoint(folder, config, minutes, before), *callbacks])

    def learn(total_timesteps: int) -> Any:
        if saved is None:
            return model.learn(total_timesteps=total_timesteps, callback=callback)
        return model.learn(
            total_timesteps=total_timesteps - model.num_timesteps,
            callback=callback,
            reset_num_timesteps=False,
        )

    return model, learn, before
