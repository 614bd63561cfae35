"""A trained next-item model behind a numpy API: score, retrieve top-k, evaluate, save, load."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from recgym.metrics import metrics_at_rank, top_k
from recgym.models.seqrec.config import SeqRecConfig
from recgym.models.seqrec.models import SeqRecModel, build_model, pad_batch

# top_k: re-exported from recgym.metrics
__all__ = [
    "SeqRecRetriever",
    "evaluate_scores",
    "read_module",
    "target_positions",
    "top_k",
    "write_module",
]

_WEIGHTS = "model.safetensors"
_META = "seqrec.json"
_FORMAT = 1


def write_module(
    directory: str | Path,
    module: torch.nn.Module,
    meta: dict[str, Any],
    meta_name: str,
    weights_name: str = _WEIGHTS,
) -> Path:
    """Write ``module``'s weights (safetensors, ``weights_name``) and ``meta`` (JSON,
    ``meta_name``) into ``directory``, created if missing; returns it."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path / weights_name))
    (path / meta_name).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_module(
    directory: str | Path, meta_name: str, weights_name: str = _WEIGHTS
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON and the weights that :func:`write_module` wrote.

    Raises:
        FileNotFoundError: the directory lacks the weights or the JSON file.
    """
    path = Path(directory)
    missing = [f for f in (weights_name, meta_name) if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} lacks {missing}; was it written by save()?")
    return json.loads((path / meta_name).read_text()), load_file(str(path / weights_name))


def target_positions(
    scores: np.ndarray, histories: Sequence[np.ndarray], targets: np.ndarray, k: int = 10
) -> np.ndarray:
    """``(B,)`` int64: the 0-based position of each row's target item in the top ``k`` of
    full-catalog ``scores`` ``(B, N)``, ``-1`` where it is not there.

    History items are excluded from the ranking, the target never is (it stays in if it is
    also in the history), and ties go to the lower item index (:func:`top_k`). The positions
    are what per-user metrics and paired comparisons are computed from
    (:func:`recgym.metrics.metrics_at_rank`).
    """
    targets = np.asarray(targets, dtype=np.int64)
    exclude = [np.asarray(h, dtype=np.int64) for h in histories]
    exclude = [h[h != t] for h, t in zip(exclude, targets, strict=True)]
    ranked, _ = top_k(scores, k, exclude)
    found = ranked == targets[:, None]
    return np.where(found.any(axis=1), found.argmax(axis=1), -1).astype(np.int64)


def evaluate_scores(
    scores: np.ndarray, histories: Sequence[np.ndarray], targets: np.ndarray, k: int = 10
) -> dict[str, float]:
    """Mean ``ndcg@k``, ``recall@k`` and ``hit@k`` (:mod:`recgym.metrics`) of full-catalog
    ``scores`` ``(B, N)`` for one target item per row, ranked as :func:`target_positions`
    ranks them."""
    positions = target_positions(scores, histories, targets, k)
    found = metrics_at_rank(positions, k, ks=(k,), names=("ndcg", "recall", "hit"))
    return {name: float(values.mean()) for name, values in found.items()}


class SeqRecRetriever:
    """Scores every item as a user's next one, given the user's history of item indices.

    Attributes:
        name: the model's registry name.
        n_items: catalog size; items are ``0..n_items-1`` (``item_idx`` of the dataset).
        config: the configuration the model was built and trained with.
        metrics: validation/test results and training facts (see :func:`train_seqrec`).
        data_version: a digest of the data the model was trained on ("" if unknown).
        history: one record per training epoch (``epoch``, ``loss``, ``validation/ndcg@10``).
        model: the torch module, in eval mode.
    """

    def __init__(
        self,
        model: SeqRecModel,
        *,
        metrics: dict[str, float] | None = None,
        data_version: str = "",
        history: list[dict[str, float]] | None = None,
        batch_size: int = 256,
    ) -> None:
        """Wrap a model; ``batch_size`` is the number of histories scored per forward pass."""
        self.model = model.eval()
        self.config: SeqRecConfig = model.config
        self.name = self.config.model
        self.n_items = model.n_items
        self.metrics = dict(metrics or {})
        self.data_version = data_version
        self.history = list(history or [])
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return self.model.item_emb.weight.device

    def __repr__(self) -> str:
        ndcg = self.metrics.get("test/ndcg@10")
        tail = f", test/ndcg@10={ndcg:.4f}" if ndcg is not None else ""
        return f"SeqRecRetriever({self.name!r}, n_items={self.n_items}{tail})"

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores ``(B, n_items)`` float32 of every item as the next one after each history.

        Only the last ``config.max_len`` items of a history count. History items are not
        masked. An empty history is scored from the padding token alone.

        Raises:
            ValueError: a history holds an index outside ``0..n_items-1``.
        """
        out = np.empty((len(histories), self.n_items), dtype=np.float32)
        with torch.inference_mode():
            for rows, states in self._state_batches(histories):
                out[rows] = self.model.item_logits(states).float().cpu().numpy()
        return out

    def states(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """User states ``(B, d)``: the hidden state at each history's last item (the vector
        :meth:`score` takes dot products of), on the model's device, without gradients.

        Raises:
            ValueError: a history holds an index outside ``0..n_items-1``.
        """
        out = torch.empty(len(histories), self.config.d, device=self.device)
        with torch.inference_mode():
            for rows, states in self._state_batches(histories):
                out[torch.as_tensor(rows, device=self.device)] = states.float()
        return out

    def _state_batches(
        self, histories: Sequence[np.ndarray]
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """``(rows, states)`` per forward batch; call under ``torch.inference_mode()``."""
        seqs = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
        for row, seq in enumerate(seqs):
            if len(seq) and (seq.min() < 0 or seq.max() >= self.n_items):
                raise ValueError(
                    f"history {row} has item indices outside 0..{self.n_items - 1}: "
                    f"{seq[(seq < 0) | (seq >= self.n_items)][:5].tolist()}"
                )
        # Batches of similar lengths pad less; each history's score does not depend on its batch.
        order = np.argsort([min(len(s), self.config.max_len) for s in seqs], kind="stable")
        self.model.eval()
        for start in range(0, len(seqs), self.batch_size):
            rows = order[start : start + self.batch_size]
            items, lengths = pad_batch([seqs[i] for i in rows], self.config.max_len)
            hidden = self.model.encode(items.to(self.device))
            last = (lengths.clamp(min=1) - 1).to(self.device)
            yield rows, hidden[torch.arange(len(rows)), last]

    def retrieve(
        self, histories: Sequence[np.ndarray], k: int, *, exclude_history: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best next items of each history: ``(items (B, k) int64, scores (B, k))``.

        Items come best first, ties to the lower index. With ``exclude_history`` the items of
        the history are never returned (rows run out as ``-1`` / ``-inf`` if ``k`` exceeds
        what is left). Raises ValueError if ``k`` is not in ``1..n_items``.
        """
        scores = self.score(histories)
        return top_k(scores, k, list(histories) if exclude_history else None)

    def evaluate(
        self, histories: Sequence[np.ndarray], targets: np.ndarray, k: int = 10
    ) -> dict[str, float]:
        """Mean ``ndcg@k``, ``recall@k`` and ``hit@k`` of the full-catalog ranking of each
        history's next item ``targets[i]`` (see :func:`evaluate_scores`)."""
        return evaluate_scores(self.score(histories), histories, targets, k)

    def save(self, directory: str | Path) -> Path:
        """Write the weights (safetensors) and the config, metrics, history and data version
        (JSON) into ``directory``, created if missing; returns the directory."""
        meta: dict[str, Any] = {
            "format": _FORMAT,
            "n_items": self.n_items,
            "config": dataclasses.asdict(self.config),
            "metrics": self.metrics,
            "data_version": self.data_version,
            "history": self.history,
        }
        return write_module(directory, self.model, meta, _META)

    @classmethod
    def load(
        cls, directory: str | Path, device: str | torch.device | None = None
    ) -> SeqRecRetriever:
        """Load what :meth:`save` wrote, onto ``device`` (default CPU).

        Raises:
            FileNotFoundError: the directory lacks the weights or the JSON file.
        """
        meta, state = read_module(directory, _META)
        config = SeqRecConfig(**meta["config"])
        model = build_model(config, int(meta["n_items"]))
        model.load_state_dict(state)
        model.to(torch.device(device) if device is not None else torch.device("cpu"))
        return cls(
            model,
            metrics=meta["metrics"],
            data_version=meta["data_version"],
            history=meta.get("history", []),
        )
