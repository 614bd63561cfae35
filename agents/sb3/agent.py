"""Trained stable-baselines3 models as recgym agents: ``--agent sb3`` in the benchmark runner.

SB3 cannot read text, so a model for a ``Dict`` env is trained on its numeric keys, e.g. for
``RecRank-v0`` (whose observation also holds a ``Text`` prompt)::

    env = gym.make("RecRank-v0", retriever="popularity")
    env = FilterObservation(env, ["candidates", "history"])
    PPO("MultiInputPolicy", env).learn(100_000).save("ppo.zip")

and evaluated on the unfiltered env, which :class:`SB3Agent` filters the same way::

    python -m benchmarks run --env RecRank-v0 --env-kwargs '{"retriever": "popularity"}' \\
        --agent sb3 --agent-kwargs '{"algo": "PPO", "path": "ppo.zip"}'

stable-baselines3 (and with it torch) is imported only when a model is loaded, so importing
this module stays light.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from recgym.agent import check_action_masks
from recgym.error import ModelLoadError, UnknownNameError

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

__all__ = ["ALGOS", "SB3Agent", "resolve_algo", "save_for_evaluation"]

ALGOS = ("A2C", "DDPG", "DQN", "PPO", "SAC", "TD3")
"""The stable-baselines3 algorithms known by name (any case); others go by ``module:Class``."""


def _base_algorithm() -> type[BaseAlgorithm]:
    try:
        from stable_baselines3.common.base_class import BaseAlgorithm
    except ImportError as exc:
        raise ImportError(
            "the sb3 agent needs stable-baselines3; install it with pip install 'recgym[sb3]'"
        ) from exc
    return BaseAlgorithm


def resolve_algo(algo: str) -> type[BaseAlgorithm]:
    """The algorithm class named ``algo``: one of :data:`ALGOS` or ``"module.path:Class"``.

    Raises:
        UnknownNameError: ``algo`` is neither a known name nor an importable ``module:Class``.
        TypeError: ``module:Class`` names something that is not an SB3 algorithm class.
    """
    base = _base_algorithm()
    if ":" in algo:
        module_name, _, attr = algo.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownNameError(
                f"cannot import {attr!r} from {module_name!r} ({type(exc).__name__}: {exc}); "
                "expected 'module.path:Class' naming an SB3 algorithm, e.g. 'sb3_contrib:QRDQN'"
            ) from exc
    elif algo.upper() in ALGOS:
        target = getattr(importlib.import_module("stable_baselines3"), algo.upper())
    else:
        hint = difflib.get_close_matches(algo.upper(), ALGOS, n=1)
        raise UnknownNameError(
            f"unknown SB3 algorithm {algo!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; expected one of {', '.join(ALGOS)} or 'module.path:Class' (e.g. "
            "'sb3_contrib:QRDQN'), the class whose save() wrote the model"
        )
    if not (isinstance(target, type) and issubclass(target, base)):
        raise TypeError(
            f"algo {algo!r} is {target!r}, not a stable-baselines3 algorithm class (a subclass "
            "of stable_baselines3.common.base_class.BaseAlgorithm)"
        )
    return target


def save_for_evaluation(model: BaseAlgorithm, path: str | os.PathLike[str]) -> Path:
    """``model.save(path)`` without the optimizer's moments: a zip that :class:`SB3Agent` (or
    ``ALGO.load``) plays exactly as the model does, at about a third of the size, for
    committing next to results. Training it further starts its optimizer afresh; keep
    ``model.save``'s zip (or a checkpoint) to resume training.
    """
    policy: Any = model.policy
    optimizer = policy.optimizer
    policy.optimizer = type(optimizer)(policy.parameters(), **optimizer.defaults)
    try:
        model.save(Path(path))
    finally:
        policy.optimizer = optimizer
    return _model_file(path)


def _model_file(path: str | os.PathLike[str]) -> Path:
    """The saved model's file: ``path``, or ``path + ".zip"`` as SB3's ``load`` also tries."""
    given = Path(path).expanduser()
    for candidate in (given, given.with_name(given.name + ".zip")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no stable-baselines3 model at {given} (nor {given.name}.zip beside it); expected the "
        ".zip file written by model.save(path)"
    )


def _algo_name(model: BaseAlgorithm) -> str:
    """``"PPO"`` for SB3's own algorithms, else ``"module:Class"`` (what :func:`resolve_algo`
    takes back)."""
    cls = type(model)
    if cls.__module__.startswith("stable_baselines3.") and cls.__name__ in ALGOS:
        return cls.__name__
    return f"{cls.__module__}:{cls.__qualname__}"


def _keys(space: gym.Space[Any]) -> list[str]:
    return list(space.spaces) if isinstance(space, spaces.Dict) else []


def _not_a_dict(space: gym.Space[Any], keys: list[str]) -> str:
    """The error for a ``Dict`` observation given to a model trained on one array."""
    return (
        f"the model reads a {space} observation; the env gives a Dict with keys {keys}. "
        "Train on a Dict of the env's numeric keys instead (for RecRank-v0: "
        'FilterObservation(env, ["candidates", "history"]) and "MultiInputPolicy")'
    )


class SB3Agent:
    """A trained stable-baselines3 model as a recgym agent.

    Each observation is cut down to what the model's ``observation_space`` holds (for a
    ``Dict`` space, its keys; the env may have more, such as ``RecRank-v0``'s ``"prompt"``),
    and a batch of them goes through one ``model.predict`` call.

    One model per training seed: a ``path`` holding ``{seed}`` names a zip per seed
    (``"runs/ppo-seed{seed}.zip"``); :meth:`reset` with seed ``s`` loads the one trained with
    seed ``s``, so the runner's ``--seeds 0 1 2`` evaluates the three training seeds and the
    row's per-seed means are theirs. Before any reset it is the ``seed`` argument's.

    Args:
        path: the ``.zip`` written by ``model.save`` (``.zip`` may be left off, as in SB3);
            ``{seed}`` in it stands for the training seed.
        algo: the class that saved it: ``"PPO"``, ``"A2C"``, ``"DQN"``, ``"SAC"``, ``"TD3"``,
            ``"DDPG"``, or ``"module.path:Class"`` (``"sb3_contrib:QRDQN"``).
        deterministic: take the policy's mode (``True``) or sample from it.
        device: the torch device to load on (``"auto"``: CUDA when available).
        seed: with ``{seed}`` in ``path``, the training seed whose model is loaded first.

    Attributes:
        model: the SB3 algorithm.
        algo: the algorithm, as :func:`resolve_algo` takes it.
        path: the model file, ``None`` for :meth:`from_model`.

    Raises:
        FileNotFoundError: nothing at ``path``.
        UnknownNameError: ``algo`` is not an SB3 algorithm.
        ModelLoadError: the file does not load as ``algo``.
    """

    model: BaseAlgorithm
    algo: str
    path: str | None
    deterministic: bool

    def __init__(
        self,
        path: str | os.PathLike[str],
        algo: str,
        *,
        deterministic: bool = True,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        cls = resolve_algo(algo)
        self._device = device
        self._seed: int | None = seed if "{seed}" in str(path) else None
        model = self._load(cls, str(path), seed)
        self._bind(model, algo if ":" in algo else algo.upper(), str(path), deterministic)

    def _load(self, cls: type[BaseAlgorithm], path: str, seed: int) -> BaseAlgorithm:
        file = _model_file(path.replace("{seed}", str(seed)))
        try:
            return cls.load(str(file), device=self._device)
        except Exception as exc:  # SB3's own errors here (KeyError, zip errors) name no file
            raise ModelLoadError(
                f"could not load {file} as {cls.__name__} ({type(exc).__name__}: {exc}); "
                "pass the algo whose save() wrote it and a .zip from model.save"
            ) from exc

    @classmethod
    def from_model(cls, model: BaseAlgorithm, *, deterministic: bool = True) -> SB3Agent:
        """Wrap an already built (e.g. just trained) model; ``config()["path"]`` is ``None``."""
        if not isinstance(model, _base_algorithm()):
            raise TypeError(
                f"expected a stable-baselines3 algorithm (PPO, DQN...); got {type(model).__name__}"
            )
        agent = cls.__new__(cls)  # no file to load: bind the model directly
        agent._seed, agent._device = None, str(model.device)
        agent._bind(model, _algo_name(model), None, deterministic)
        return agent

    @classmethod
    def from_env(cls, env: gym.Env[Any, Any], **kwargs: Any) -> SB3Agent:
        """Load as ``SB3Agent(**kwargs)`` and check that ``env``'s observations hold what the
        model reads, so a mismatch fails before any episode is played."""
        missing = [name for name in ("path", "algo") if name not in kwargs]
        if missing:
            raise TypeError(
                f"the sb3 agent needs {' and '.join(missing)}: the model's .zip and the class "
                """that saved it, e.g. --agent-kwargs '{"algo": "PPO", "path": "ppo.zip"}'"""
            )
        agent = cls(**kwargs)
        agent.check_observation_space(env.observation_space)
        return agent

    def _bind(self, model: BaseAlgorithm, algo: str, path: str | None, deterministic: bool) -> None:
        self.model = model
        self.algo = algo
        self.path = path
        self.deterministic = bool(deterministic)

    @property
    def observation_space(self) -> gym.Space[Any]:
        """What the model was trained on."""
        space: gym.Space[Any] = self.model.observation_space
        return space

    def check_observation_space(self, env_space: gym.Space[Any]) -> None:
        """Raise ``ValueError`` unless observations from ``env_space`` hold what the model reads
        (every key of its ``Dict`` space, with the same shapes)."""
        space = self.observation_space
        if isinstance(space, spaces.Dict):
            if not isinstance(env_space, spaces.Dict):
                raise ValueError(
                    f"the model reads a Dict observation with keys {_keys(space)}; the env's "
                    f"observation space is {env_space}"
                )
            missing = [key for key in space.spaces if key not in env_space.spaces]
            if missing:
                raise ValueError(
                    f"the model reads observation keys {_keys(space)}; the env's observation "
                    f"has no {missing} (it has {_keys(env_space)}). Evaluate on the env the "
                    "model was trained on (same keys, before FilterObservation)"
                )
            for key, sub in space.spaces.items():
                self._check_shape(env_space[key].shape, sub, key)
        elif isinstance(env_space, spaces.Dict):
            raise ValueError(_not_a_dict(space, _keys(env_space)))
        elif env_space.shape is None:  # Text: nothing SB3 could have been trained on
            raise ValueError(
                f"the model reads a {space} observation; the env's observation space is {env_space}"
            )
        else:
            self._check_shape(env_space.shape, space, None)

    @staticmethod
    def _check_shape(shape: tuple[int, ...] | None, space: gym.Space[Any], key: str | None) -> None:
        if shape is not None and space.shape is not None and tuple(shape) != tuple(space.shape):
            where = "the observation" if key is None else f"observation key {key!r}"
            raise ValueError(
                f"the model reads {where} with shape {space.shape}; the env gives shape "
                f"{tuple(shape)}. Evaluate with the env settings it was trained with"
            )

    def _select(self, observation: Any) -> Any:
        """The part of one env observation that the model reads."""
        space = self.observation_space
        if not isinstance(space, spaces.Dict):
            if isinstance(observation, Mapping):
                raise ValueError(_not_a_dict(space, list(observation)))
            return np.asarray(observation)
        if not isinstance(observation, Mapping):
            raise ValueError(
                f"the model reads a Dict observation with keys {_keys(space)}; got a "
                f"{type(observation).__name__}"
            )
        missing = [key for key in space.spaces if key not in observation]
        if missing:
            raise ValueError(
                f"the observation has no {missing}: the model reads keys {_keys(space)} and the "
                f"observation has {list(observation)}. Evaluate on the env the model was trained "
                "on (same keys, before FilterObservation)"
            )
        return {key: np.asarray(observation[key]) for key in space.spaces}

    def _stack(self, selected: Sequence[Any]) -> Any:
        """One batch for ``model.predict``: ``(B, *shape)`` arrays, per key for a Dict."""
        space = self.observation_space
        if isinstance(space, spaces.Dict):
            for key, sub in space.spaces.items():
                for obs in selected:
                    self._check_shape(obs[key].shape, sub, key)
            return {key: np.stack([obs[key] for obs in selected]) for key in space.spaces}
        for obs in selected:
            self._check_shape(obs.shape, space, None)
        return np.stack(selected)

    def act_batch(
        self, observations: Sequence[Any], action_masks: np.ndarray | None = None
    ) -> list[Any]:
        """The model's actions for a batch of env observations, from one ``predict`` call.

        With ``action_masks`` (``(B, n)`` bool, a ``Discrete(n)`` model only) the actions come
        from the model's action scores with the disallowed actions removed: the Q-values of a
        DQN-style model (``q_net``: always the best allowed action), else the logits of its
        categorical policy (PPO, A2C: the best allowed action when deterministic, else a draw
        from the policy renormalised over the allowed actions).
        """
        if not observations:
            return []
        batch = self._stack([self._select(o) for o in observations])
        if action_masks is not None:
            return self._masked(batch, action_masks, len(observations))
        actions, _ = self.model.predict(batch, deterministic=self.deterministic)
        return list(actions)

    def _masked(self, batch: Any, action_masks: Any, n: int) -> list[int]:
        import torch

        space = self.model.action_space
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"action masks need a Discrete action space; the model's is {space}")
        masks = check_action_masks(action_masks, n, int(space.n), need_allowed=True)
        policy: Any = self.model.policy  # an actor-critic or a DQN policy, by the algorithm
        tensor, _ = policy.obs_to_tensor(batch)
        q_net: Any = getattr(self.model, "q_net", None)
        with torch.no_grad():
            if q_net is not None:
                scores = q_net(tensor)
            else:
                dist = policy.get_distribution(tensor).distribution
                scores = getattr(dist, "logits", None)
                if scores is None:
                    raise ValueError(
                        f"{self.algo}'s policy has no categorical logits to mask; action masks "
                        "need a DQN-style q_net or a categorical policy"
                    )
            allowed = torch.as_tensor(masks, device=scores.device)
            scores = scores.masked_fill(~allowed, -torch.inf)
            if self.deterministic or q_net is not None:
                chosen = scores.argmax(dim=1)
            else:
                chosen = torch.distributions.Categorical(logits=scores).sample()
        return [int(a) for a in chosen.cpu().numpy()]

    def act(self, observation: Any) -> Any:
        """The model's action for one env observation."""
        return self.act_batch([observation])[0]

    def reset(self, seed: int | None = None) -> None:
        """Load the model trained with ``seed`` (a ``{seed}`` path), and seed the policy's
        sampling (when not deterministic; ``None``: leave it unseeded).

        SB3 samples from torch's global generator, so this seeds the global ``random``,
        NumPy and torch generators, as ``model.set_random_seed`` does. A seeded run gives the
        same actions for the same batches (one draw per batch, so the batch size matters).

        Raises:
            FileNotFoundError: a ``{seed}`` path has no model for ``seed``.
        """
        if self._seed is not None and seed is not None and seed != self._seed:
            assert self.path is not None  # a {seed} path
            self.model = self._load(type(self.model), self.path, seed)
            self._seed = seed
        if not self.deterministic and seed is not None:
            self.model.set_random_seed(seed)

    def config(self) -> dict[str, Any]:
        """The settings that define this agent (for leaderboard rows): also the policy class
        and, for a policy started from a user model's item vectors, that model."""
        out = {"algo": self.algo, "path": self.path, "deterministic": self.deterministic}
        out["policy"] = type(self.model.policy).__name__
        start = (getattr(self.model, "policy_kwargs", None) or {}).get("le")
        if start:
            out["policy_start"] = f"LE {start}"
        return out
