"""The configuration of SQN / SA2C training, and the named variants of the LE ablation."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from recgym.error import UnknownNameError
from recgym.le.base import DEFAULT_LE
from recgym.models.seqrec.config import SeqRecConfig, check_fields, default_config
from recgym.wrappers.lea import RANKS

__all__ = ["ALGOS", "VARIANTS", "RL4RecConfig", "parse_variant", "variant_config"]

ALGOS = ("ce", "sqn", "sa2c")
"""``ce``: the backbone alone (cross-entropy); ``sqn``: CE + Q-learning; ``sa2c``: SQN with
sampled negatives, then an advantage-weighted CE."""

REWARDS = ("rating", "le")


def _backbone() -> SeqRecConfig:
    return default_config("gru4rec", max_len=100)


@dataclass(frozen=True)
class RL4RecConfig:
    """SQN / SA2C on a seqrec backbone, and which LE inputs it reads (JSON via ``asdict``).

    With the defaults (GRU4Rec, ``max_len`` 100) an epoch over MovieLens-100k took 5.4 s (SQN)
    and 5.8 s (SA2C) on one torch thread of a busy 2-core CPU, against 3.4 s for the backbone
    alone: a 40-epoch run takes about 4 minutes (``docs/guides/rl4rec.md``).
    """

    algo: str = "sqn"
    """``"ce"`` (backbone only), ``"sqn"`` or ``"sa2c"``."""
    backbone: SeqRecConfig = field(default_factory=_backbone)
    """The backbone and the training loop: model, sizes, ``lr``, ``batch_size``, ``max_len``,
    ``max_epochs``, ``patience``, ``grad_clip``, ``seed``."""
    gamma: float = 0.5
    """Discount of the one-step TD target (Xin et al.: 0.5)."""
    end_is_terminal: bool = True
    """The last logged transition ends the episode (Xin et al.'s sessions); ``False`` treats
    the end of the logged data as a truncation and bootstraps from the state after it."""
    q_weight: float = 1.0
    """Weight of the Q-learning loss next to the cross-entropy."""
    target_update: int = 10
    """Optimiser steps between copies of the online network into the target network."""
    negatives: int = 10
    """SA2C: sampled negative actions per transition, reward 0 (SNQN); SQN uses none."""
    warmup_epochs: int = 5
    """SA2C: epochs of CE + Q only before the CE is weighted by the advantage."""
    adv_clip: float = 10.0
    """SA2C: normalised advantages are clipped to ``[0, adv_clip]`` (Xin et al. clip at 0)."""
    reward: str = "rating"
    """Logged rewards: ``"rating"`` (1.0 for a rating >= 4, else 0.2) or ``"le"`` (the RM)."""
    le_state: bool = False
    """Concatenate the LE's SM state to the backbone state (both heads read it)."""
    lea_k: int = 0
    """LEA: the LE's proposed positives per transition (0: no LEA)."""
    lea_ce_weight: float = 0.1
    """LEA: cross-entropy weight of each proposal (the logged item weighs 1)."""
    lea_q_weight: float = 0.5
    """LEA: Q-learning weight of each proposal's transition (the logged one weighs 1)."""
    lea_rank: str = "sm"
    """LEA: ``"sm"`` proposes the SM's top ``lea_k``; ``"rm"`` the ``lea_k`` of highest RM
    reward among the SM's top ``lea_pool`` (:class:`recgym.wrappers.LEAWrapper`)."""
    lea_pool: int = 0
    """LEA with ``lea_rank="rm"``: the SM candidates the RM ranks (0: ``4 * lea_k``)."""
    le: str = DEFAULT_LE
    """The LE (``recgym.le.load_user_model`` name), used when ``reward="le"``, ``le_state`` or
    ``lea_k > 0``."""
    le_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``load_user_model`` (``{"n_items": 1682}`` for ``"fake"``)."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise UnknownNameError(f"no algo named {self.algo!r}; known: {', '.join(ALGOS)}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        for name in ("q_weight", "adv_clip", "lea_ce_weight", "lea_q_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.lea_rank not in RANKS:
            raise ValueError(f"lea_rank must be one of {RANKS}, got {self.lea_rank!r}")
        if self.lea_pool and self.lea_pool < self.lea_k:
            raise ValueError(f"lea_pool must be 0 or >= lea_k = {self.lea_k}, got {self.lea_pool}")
        for name in ("target_update", "negatives", "warmup_epochs", "lea_k", "lea_pool"):
            minimum = 1 if name == "target_update" else 0
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {getattr(self, name)}")
        if self.backbone.max_len < 2:
            raise ValueError(
                f"backbone.max_len must be >= 2 (a state and its next), got {self.backbone.max_len}"
            )
        if self.algo == "ce" and self.uses_le:
            raise ValueError(
                "algo 'ce' trains the backbone alone; LE rewards, states and LEA need 'sqn' or "
                "'sa2c'"
            )

    def lea_settings(self) -> dict[str, Any]:
        """The LEA arguments of :func:`agents.rl4rec.le_inputs`."""
        return {
            "lea_k": self.lea_k,
            "lea_ce_weight": self.lea_ce_weight,
            "lea_q_weight": self.lea_q_weight,
            "lea_rank": self.lea_rank,
            "lea_pool": self.lea_pool,
        }

    @property
    def uses_le(self) -> bool:
        """Whether training reads the LE at all."""
        return self.reward == "le" or self.le_state or self.lea_k > 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RL4RecConfig:
        """The configuration that ``dataclasses.asdict`` wrote."""
        values = dict(values)
        if isinstance(values.get("backbone"), dict):
            values["backbone"] = SeqRecConfig(**values["backbone"])
        return cls(**values)


VARIANTS: dict[str, dict[str, Any]] = {
    "base": {"algo": "ce"},
    "rating": {},
    "rm": {"reward": "le"},
    "sm": {"le_state": True},
    "lea": {"lea_k": 3},
    "all": {"reward": "le", "le_state": True, "lea_k": 3},
}
"""The LE ablation's variants as :class:`RL4RecConfig` overrides: ``base`` is the CE-only
backbone, ``rating`` SQN/SA2C with rating rewards, ``rm`` with the LE's RM rewards, ``sm``
with its SM state, ``lea`` with its proposed positives (rating rewards for the logged
transitions), ``all`` with the three LE inputs."""


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """A variant name and its own settings from ``"NAME"`` or ``"NAME:FIELD=JSON,FIELD=JSON"``.

    ``"lea:lea_k=1,lea_rank=\"rm\""`` is :data:`VARIANTS`' ``lea`` with one RM-ranked proposal:
    the settings are :class:`RL4RecConfig` fields, each value JSON (no commas inside), and
    they win over the variant's own (this is how an ablation tunes a variant).

    Raises:
        UnknownNameError: the name is not a key of :data:`VARIANTS`.
        ValueError: a setting is not ``FIELD=JSON``.
        TypeError: a setting is not an :class:`RL4RecConfig` field.
    """
    name, _, rest = spec.partition(":")
    if name not in VARIANTS:
        raise UnknownNameError(f"no rl4rec variant named {name!r}; known: {', '.join(VARIANTS)}")
    settings: dict[str, Any] = {}
    for item in rest.split(",") if rest else []:
        field_name, sep, value = item.partition("=")
        if not sep or not field_name:
            raise ValueError(
                f"variant {spec!r}: settings are FIELD=JSON separated by commas "
                f"(e.g. 'lea:lea_k=1,lea_rank=\"rm\"'); got {item!r}"
            )
        try:
            settings[field_name.strip()] = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"variant {spec!r}: the value of {field_name} must be JSON (a string is "
                f'quoted: {field_name}="{value}"): {err}'
            ) from None
    check_fields(RL4RecConfig, settings)
    return name, settings


def variant_config(
    variant: str, algo: str = "sqn", *, backbone: SeqRecConfig | None = None, **overrides: Any
) -> RL4RecConfig:
    """The configuration of one ablation cell.

    Args:
        variant: a key of :data:`VARIANTS`, optionally with its own settings
            (:func:`parse_variant`: ``"lea:lea_k=1"``).
        algo: ``"sqn"`` or ``"sa2c"`` (ignored by ``base``, which is always ``"ce"``).
        backbone: the backbone configuration (default: GRU4Rec, ``max_len`` 100).
        **overrides: other :class:`RL4RecConfig` fields; the variant's own settings win over
            them.

    Raises:
        UnknownNameError: an unknown variant.
        ValueError: malformed variant settings.
        TypeError: an override is not a field.
    """
    name, settings = parse_variant(variant)
    check_fields(RL4RecConfig, overrides)
    values: dict[str, Any] = {"algo": algo, **overrides, **VARIANTS[name], **settings}
    if backbone is not None:
        values["backbone"] = backbone
    return RL4RecConfig(**values)
