"""SB3 policies whose action scores are dot products with item embeddings.

SB3's default ``MlpPolicy`` ends in a ``Linear(64, n_items)``: each of ``RecUser-v0``'s 1,682
items is an unrelated output that must be learned from the few times it was tried. These
policies score an item as ``<W state, e_item> + b_item`` instead, a two-tower head as in
sequential recommenders: what is learned about one item moves the items near it, and the
embeddings can start from the LE's own item vectors (``env.unwrapped.model.item_vectors()``),
whose dot product with the SM state is the score the SM was trained to give the next item::

    from stable_baselines3 import PPO
    from agents.sb3.policies import ItemPolicy, item_policy_kwargs
    from agents.sb3.vec_env import make_recuser_vec_env

    env = make_recuser_vec_env(16, seed=0, users="train", observation="dict", max_history=256)
    kwargs = item_policy_kwargs(env, init="le")
    PPO(ItemPolicy, env, policy_kwargs=kwargs).learn(50_000)

- :class:`ItemPolicy`: PPO and A2C (an ``ActorCriticPolicy``); the logits are the scores.
- :class:`MaskableItemPolicy`: sb3-contrib's MaskablePPO (it also applies the env's masks).
- :class:`ItemDQNPolicy`: DQN; the Q-values are the scores.

:func:`item_policy` picks the class for an algorithm. With a ``Dict`` observation holding a
``"history"`` key (``RecUser-v0(observation="dict")``), the items in it get a score of
:data:`MASKED` in training and acting, so an agent trained without the env's masks does not
keep recommending what the user has seen (history beyond ``max_history`` items is not masked;
evaluate with the env's masks, as :class:`agents.sb3.SB3Agent` does). The critic of the
actor-critic policies reads the state only. Saved models load back with SB3's ``load`` (the
policy keyword arguments are stored in the zip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, create_mlp
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import Tensor, nn

__all__ = [
    "INITS",
    "MASKED",
    "ItemDQNPolicy",
    "ItemPolicy",
    "ItemScorer",
    "MaskableItemPolicy",
    "StateHistoryExtractor",
    "item_policy",
    "item_policy_kwargs",
    "start_vectors",
]

MASKED = -1e8
"""The score of an item in the observed history: finite (an entropy or a softmax of it stays
finite), far below any learned score (as sb3-contrib's masks do)."""

INITS = ("random", "le")
"""How :func:`item_policy_kwargs` starts the item embeddings."""


def start_vectors(
    item_vectors: Any = None, le: str | None = None, le_kwargs: dict[str, Any] | None = None
) -> np.ndarray | None:
    """The item embeddings a policy starts from: ``item_vectors``, else the item vectors of
    the user model ``le`` (loaded once per process, as ``RecUser-v0`` loads it), else ``None``
    (random)."""
    if item_vectors is not None:
        return np.asarray(item_vectors, dtype=np.float32)
    if le is None:
        return None
    from recgym.envs.users import user_model

    return user_model(le, le_kwargs).item_vectors()


def _state_space(space: gym.Space[Any]) -> spaces.Box:
    state = space["state"] if isinstance(space, spaces.Dict) else space
    if not isinstance(state, spaces.Box) or len(state.shape) != 1:
        raise ValueError(
            "an item policy reads a 1-d Box state, or a Dict with a 'state' Box (and "
            f"optionally a 'history' of item indices): RecUser-v0's observations; got {space}"
        )
    return state


def _history_len(space: gym.Space[Any]) -> int:
    if isinstance(space, spaces.Dict) and "history" in space.spaces:
        history = space["history"]
        if history.shape is None or len(history.shape) != 1:
            raise ValueError(f"the 'history' key must be 1-d item indices; got {history}")
        return int(history.shape[0])
    return 0


class StateHistoryExtractor(BaseFeaturesExtractor):
    """Features ``[state, history]``: the state, then the history's item indices as floats
    (-1: padding), which :class:`ItemScorer` turns back into a mask. A ``Box`` observation is
    the state alone."""

    def __init__(self, observation_space: gym.Space[Any]) -> None:
        self.state_dim = int(_state_space(observation_space).shape[0])
        self.history_len = _history_len(observation_space)
        super().__init__(observation_space, self.state_dim + self.history_len)

    def forward(self, observations: Any) -> Tensor:
        """``(B, state_dim + history_len)`` float features."""
        if not isinstance(observations, dict):
            return observations.float()
        parts = [observations["state"].float()]
        if self.history_len:
            parts.append(observations["history"].float())
        return torch.cat(parts, dim=1)


class ItemScorer(nn.Module):
    """``score[b, j] = <W s_b, e_j> + c_j`` for the state ``s_b`` (the first ``state_dim``
    features); items in the history (the features after it) score :data:`MASKED`.

    Args:
        state_dim: length of the state.
        history_len: history indices after the state (0: none, nothing masked).
        n_items: catalog size.
        item_vectors: ``(n_items, state_dim)`` start embeddings (``None``: random, small).
        init_scale: with ``item_vectors``, ``W`` starts at ``init_scale`` times the identity
            (the SM's scores sharpened as its training softmax was, ``1 / tau``); without,
            ``W`` starts as a default ``Linear``.
    """

    def __init__(
        self,
        state_dim: int,
        history_len: int,
        n_items: int,
        item_vectors: np.ndarray | None = None,
        init_scale: float = 10.0,
    ) -> None:
        super().__init__()
        self.state_dim, self.history_len, self.n_items = state_dim, history_len, n_items
        self.query = nn.Linear(state_dim, state_dim, bias=False)
        self.items = nn.Parameter(torch.empty(n_items, state_dim))
        self.bias = nn.Parameter(torch.zeros(n_items))
        if item_vectors is None:
            nn.init.normal_(self.items, std=state_dim**-0.5)
        else:
            vectors = np.asarray(item_vectors, dtype=np.float32)
            if vectors.shape != (n_items, state_dim):
                raise ValueError(
                    f"item_vectors must be (n_items, state_dim) = ({n_items}, {state_dim}); got "
                    f"{vectors.shape}"
                )
            with torch.no_grad():
                self.items.copy_(torch.from_numpy(vectors))
                self.query.weight.copy_(init_scale * torch.eye(state_dim))

    def forward(self, features: Tensor) -> Tensor:
        """``(B, n_items)`` scores."""
        state = features[:, : self.state_dim]
        scores = self.query(state) @ self.items.T + self.bias
        if not self.history_len:
            return scores
        history = features[:, self.state_dim :].round().long()
        # Padding (-1) goes to a spare column that is dropped.
        index = torch.where(history >= 0, history, self.n_items)
        seen = torch.zeros(
            scores.shape[0], self.n_items + 1, dtype=torch.bool, device=scores.device
        )
        seen.scatter_(1, index, True)
        return scores.masked_fill(seen[:, : self.n_items], MASKED)


class _StateCritic(nn.Module):
    """SB3's ``mlp_extractor`` contract: the actor gets the features whole (the item head reads
    state and history), the critic an MLP of the state only."""

    def __init__(self, features_dim: int, state_dim: int, critic_arch: list[int]) -> None:
        super().__init__()
        self.state_dim = state_dim
        self.latent_dim_pi = features_dim
        self.latent_dim_vf = critic_arch[-1] if critic_arch else state_dim
        self.value_net = nn.Sequential(*create_mlp(state_dim, -1, critic_arch, nn.Tanh))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: Tensor) -> Tensor:
        return features

    def forward_critic(self, features: Tensor) -> Tensor:
        return self.value_net(features[:, : self.state_dim])


@dataclass
class _Start:
    """How an item policy's scorer starts: the arguments every item policy takes and saves."""

    item_vectors: Any = None
    le: str | None = None
    le_kwargs: dict[str, Any] | None = None
    init_scale: float = 10.0

    def scorer(self, extractor: StateHistoryExtractor, n_items: int) -> ItemScorer:
        """A new :class:`ItemScorer` over ``extractor``'s features."""
        vectors = start_vectors(self.item_vectors, self.le, self.le_kwargs)
        return ItemScorer(
            extractor.state_dim, extractor.history_len, n_items, vectors, self.init_scale
        )

    def params(self) -> dict[str, Any]:
        """The constructor arguments (what a saved policy is built again with)."""
        return {
            "item_vectors": self.item_vectors,
            "le": self.le,
            "le_kwargs": self.le_kwargs,
            "init_scale": float(self.init_scale),
        }


class _ItemHead:
    """What the actor-critic item policies share (a mixin before SB3's policy class): the
    arguments, the mlp extractor and the item head."""

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        lr_schedule: Any,
        item_vectors: Any = None,
        le: str | None = None,
        le_kwargs: dict[str, Any] | None = None,
        init_scale: float = 10.0,
        critic_arch: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        _check_discrete(action_space)
        self.start = _Start(item_vectors, le, le_kwargs, init_scale)
        self.critic_arch = [64, 64] if critic_arch is None else list(critic_arch)
        kwargs.setdefault("features_extractor_class", StateHistoryExtractor)
        # The item head starts as the SM (or small random scores): SB3's orthogonal init
        # would overwrite it.
        kwargs.setdefault("ortho_init", False)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)  # type: ignore[call-arg]

    def _build_mlp_extractor(self) -> None:
        policy: Any = self  # an SB3 actor-critic policy (this class is its mixin)
        policy.mlp_extractor = _StateCritic(
            policy.features_dim, policy.features_extractor.state_dim, self.critic_arch
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        policy: Any = self
        policy.action_net = self.start.scorer(policy.features_extractor, int(policy.action_space.n))
        # The optimizer was made over the default head's parameters: make it again.
        policy.optimizer = policy.optimizer_class(
            policy.parameters(), lr=lr_schedule(1), **policy.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data: dict[str, Any] = super()._get_constructor_parameters()  # type: ignore[misc]
        return {**data, **self.start.params(), "critic_arch": self.critic_arch}


def _check_discrete(action_space: gym.Space[Any]) -> None:
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(
            f"item policies need a Discrete item action space (RecUser-v0); got {action_space}"
        )


class ItemPolicy(_ItemHead, ActorCriticPolicy):
    """An actor-critic policy (PPO, A2C) whose logits are :class:`ItemScorer` scores.

    Args:
        observation_space: a ``Box`` state or a ``Dict`` with ``"state"`` and ``"history"``.
        action_space: ``Discrete(n_items)``.
        lr_schedule: SB3's learning-rate schedule.
        item_vectors: ``(n_items, state_dim)`` start embeddings.
        le, le_kwargs: without ``item_vectors``, start from this user model's item vectors
            (neither: random embeddings).
        init_scale: the query's start scale with start vectors.
        critic_arch: hidden sizes of the value MLP (default ``[64, 64]``).
        **kwargs: ``ActorCriticPolicy``'s (``net_arch`` is not used).
    """


def _maskable_base() -> type[Any]:
    try:
        from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    except ImportError as exc:  # pragma: no cover - sb3-contrib is in recgym[sb3]
        raise ImportError(
            "MaskableItemPolicy needs sb3-contrib; install it with pip install 'recgym[sb3]'"
        ) from exc
    return MaskableActorCriticPolicy


class MaskableItemPolicy(_ItemHead, _maskable_base()):  # type: ignore[misc]
    """:class:`ItemPolicy` for sb3-contrib's MaskablePPO (same arguments)."""


class _ItemQNetwork(QNetwork):
    """SB3's ``QNetwork`` with :class:`ItemScorer` Q-values."""

    def __init__(self, scorer: ItemScorer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.q_net = scorer  # type: ignore[assignment]


class ItemDQNPolicy(DQNPolicy):
    """A DQN policy whose Q-values are :class:`ItemScorer` scores (arguments as
    :class:`ItemPolicy`; ``net_arch`` is not used)."""

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        lr_schedule: Any,
        item_vectors: Any = None,
        le: str | None = None,
        le_kwargs: dict[str, Any] | None = None,
        init_scale: float = 10.0,
        **kwargs: Any,
    ) -> None:
        _check_discrete(action_space)
        self.start = _Start(item_vectors, le, le_kwargs, init_scale)
        kwargs.setdefault("features_extractor_class", StateHistoryExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)  # type: ignore[arg-type]

    def make_q_net(self) -> QNetwork:
        """A Q-network over the item scores (its own features extractor, as SB3's)."""
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        n_items = int(self.action_space.n)  # type: ignore[attr-defined]
        scorer = self.start.scorer(net_args["features_extractor"], n_items)
        return _ItemQNetwork(scorer, **net_args).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **self.start.params()}


def item_policy(algo: str) -> type[Any]:
    """The item policy class for an algorithm: ``"DQN"`` (and ``module:Class`` names ending in
    it), ``"MaskablePPO"``, else the actor-critic :class:`ItemPolicy` (PPO, A2C)."""
    name = algo.rpartition(":")[2].upper()
    if name.endswith("DQN"):
        return ItemDQNPolicy
    if name == "MASKABLEPPO":
        return MaskableItemPolicy
    return ItemPolicy


def item_policy_kwargs(env: Any, init: str = "le", init_scale: float = 10.0) -> dict[str, Any]:
    """``policy_kwargs`` for an item policy on ``env`` (a ``RecUser-v0`` env or VecEnv).

    With ``init="le"`` the kwargs name the env's user model (``{"le": ..., "le_kwargs":
    ...}``), not its vectors: a saved model's zip stays small and readable, and the vectors
    are read from the model loaded for the env.

    Args:
        env: a ``RecUser-v0`` env, its vector env or a
            :class:`~agents.sb3.vec_env.RecUserVecEnv`.
        init: ``"le"``: the embeddings start as the LE's item vectors and the policy as the
            SM's greedy scores; ``"random"``: from scratch.
        init_scale: the query's start scale with ``init="le"``.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}; got {init!r}")
    if init == "random":
        return {}
    batch = getattr(env, "batch", None) or getattr(getattr(env, "unwrapped", None), "batch", None)
    if batch is None:
        raise ValueError(f"expected a RecUser-v0 env or RecUserVecEnv; got {env!r}")
    return {"le": batch.le, "le_kwargs": dict(batch.le_kwargs), "init_scale": init_scale}
