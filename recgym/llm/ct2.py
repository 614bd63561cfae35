"""The CTranslate2 backend: a fast CPU (and CUDA) engine behind the :class:`~recgym.llm.LLM` API.

CTranslate2 runs a converted copy of a Hugging Face causal LM with its own C++ kernels
(int8 GEMMs, a fused KV cache), several times faster than transformers' ``generate`` on a
CPU for small models (``benchmarks/perf/ct2_generate.py`` measures it side by side).

- **Conversion, once per model.** :func:`converted_dir` converts a model folder with
  ``ctranslate2.converters.TransformersConverter`` into ``<recgym cache>/models/ct2/``, under a
  name that holds the digest of the source's files and the quantization, so a changed source
  converts again and an unchanged one never does. The folder is written beside its place and
  renamed in whole, with a manifest (:func:`recgym.data.cache.install_dir`).
- **Adapters are folded first.** :func:`from_hf` takes a loaded :class:`~recgym.llm.hf.HFLLM`
  (a PEFT LoRA adapter on it included), merges a copy of the adapter into the weights and
  converts that, keyed by the digest of the merged weights.
- **Quantization.** ``"int8"`` (the default on CPU) quantizes the weights of every linear
  layer and the embeddings to int8 per row; CTranslate2's int8 GEMM also quantizes the
  activations, so greedy outputs differ from transformers' float32 ones (the benchmark reports
  by how much). ``"float32"`` keeps the weights as they are: the same tokens as
  transformers in float32, at a smaller speed-up.

Sampling. CTranslate2 draws a generator's samples from one random stream, so unlike
:class:`~recgym.llm.hf.HFLLM` a row's sample depends on the rows it is generated with: a seeded
call is reproducible for the same prompts, seeds, batch size and ``threads`` (a sampled call
runs on fresh generators seeded from its rows' seeds), but not independent of the batching.
Greedy decoding (``temperature=0``) does not depend on it. The seed is process-wide in
CTranslate2: two threads sampling from CT2 models at once may see each other's seed.

Stop strings are checked by a per-token callback that ends a row as soon as its text holds
one; the text is then cut as every backend cuts it (:func:`recgym.llm.base.ids_to_generation`).

Imported only when the backend is asked for (it imports ``ctranslate2``; converting also needs
torch and transformers): install the ``ct2`` extra.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from recgym.error import ModelLoadError
from recgym.llm.base import (
    Generation,
    Prompt,
    batch_rows,
    check_prompts,
    check_sampling,
    cut_at_stop,
    ids_to_generation,
    row_seeds,
    template_prompt,
)
from recgym.utils.files import file_digest, read_manifest, verify_dir

__all__ = [
    "CT2LLM",
    "LENGTH_TOLERANCE",
    "QUANTIZATIONS",
    "converted_dir",
    "from_hf",
    "load_ct2",
    "source_digest",
]

logger = logging.getLogger(__name__)

Quantization = Literal["int8", "float32"]
QUANTIZATIONS: tuple[Quantization, ...] = ("int8", "float32")
"""Weight types a model is converted to: ``"int8"`` (fast) or ``"float32"`` (exact)."""

_FORMAT = 1  # bump when what a converted folder holds changes: old folders convert again
_WEIGHT_FILES = ("config.json", "generation_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _ct2() -> Any:
    try:
        import ctranslate2
    except ImportError as exc:
        raise ModelLoadError(
            "the ct2 backend needs the ctranslate2 package; install recgym's extra with "
            "`pip install 'recgym[ct2]'` (or use backend='transformers')"
        ) from exc
    return ctranslate2


def _check_quantization(quantization: str) -> None:
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}"
        )


def source_digest(source: Path) -> str:
    """The sha256 of what defines a model folder's weights: its config and weight files
    (taken from the folder's manifest when it has a valid one, else hashed)."""
    manifest = read_manifest(source) if verify_dir(source) else None
    names = sorted(
        p.name
        for p in source.iterdir()
        if p.is_file() and (p.name in _WEIGHT_FILES or p.name.endswith(_WEIGHT_SUFFIXES))
    )
    if not any(n.endswith(_WEIGHT_SUFFIXES) for n in names):
        raise ModelLoadError(
            f"{source} holds no weights (*.safetensors or *.bin); expected a folder written by "
            "save_pretrained()"
        )
    h = hashlib.sha256()
    for name in names:
        known = manifest["sha256"].get(name) if manifest else None
        h.update(f"{name}\0{known or file_digest(source / name)}\n".encode())
    return h.hexdigest()


def _target(name: str, digest: str, quantization: str) -> Path:
    """Where the conversion of the weights of digest ``digest`` lives in the cache."""
    from recgym.data.cache import cache_dir

    key = json.dumps(
        {
            "weights": digest,
            "quantization": quantization,
            "ctranslate2": _ct2().__version__,
            "format": _FORMAT,
        },
        sort_keys=True,
    )
    short = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir("models", "ct2") / f"{name}-{quantization}-{short}"


def converted_dir(
    source: str | os.PathLike[str],
    quantization: Quantization = "int8",
    *,
    digest: str | None = None,
    name: str | None = None,
) -> Path:
    """The CTranslate2 copy of the model folder ``source``, converted on first use.

    Args:
        source: a Hugging Face model folder (``config.json``, weights, tokenizer).
        quantization: the weight type (:data:`QUANTIZATIONS`).
        digest: the digest that identifies the weights, when the caller knows it (a merged
            adapter); default :func:`source_digest` of ``source``.
        name: the folder name's prefix (default: ``source``'s name).

    Returns:
        The converted folder (CTranslate2's ``model.bin`` and the tokenizer files).
    """
    from recgym.data.cache import install_dir

    _check_quantization(quantization)
    ct2 = _ct2()
    src = Path(source).expanduser()
    target = _target(name or src.name, digest or source_digest(src), quantization)
    if verify_dir(target, remedy="converting it again"):
        return target
    logger.warning(
        "recgym: converting %s to CTranslate2 (%s) in %s (once)", src, quantization, target
    )

    def write(folder: Path) -> None:
        from transformers import AutoTokenizer

        out = folder / "model"
        ct2.converters.TransformersConverter(str(src), low_cpu_mem_usage=True).convert(
            str(out), quantization=quantization
        )
        for p in out.iterdir():  # one level: the manifest lists the folder's own files
            os.replace(p, folder / p.name)
        out.rmdir()
        AutoTokenizer.from_pretrained(str(src), local_files_only=True).save_pretrained(folder)

    meta = {"quantization": quantization, "ctranslate2": ct2.__version__, "source": str(src)}
    return install_dir(target, write, replace=True, meta=meta)


def from_hf(llm: Any, quantization: Quantization = "int8", **kw: Any) -> CT2LLM:
    """A :class:`CT2LLM` running the current weights of a transformers-backed LLM.

    A PEFT adapter on ``llm.model`` is merged into a copy of the weights (the model itself is
    not changed), and the result converted once, keyed by the digest of the merged weights.

    Args:
        llm: a :class:`~recgym.llm.hf.HFLLM` (its ``model``, with or without an adapter).
        quantization: the weight type (:data:`QUANTIZATIONS`).
        **kw: :class:`CT2LLM` arguments (``device``, ``threads``, ``batch_size``).
    """
    import torch

    _check_quantization(quantization)
    model = llm.model
    if hasattr(model, "merge_and_unload"):
        model = copy.deepcopy(model).merge_and_unload()
    state = model.state_dict()
    h = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu", torch.float32).contiguous()
        h.update(key.encode())
        h.update(tensor.numpy().tobytes())
    name = f"{Path(str(getattr(llm, 'path', None) or llm.name)).name}-merged"
    folder = _target(name, h.hexdigest(), quantization)
    # The folder's name is known from the digest alone: save the weights (500 MB for
    # SmolLM2-135M) only when these merged weights were never converted.
    if not verify_dir(folder):
        with tempfile.TemporaryDirectory(prefix="recgym-ct2-") as tmp:
            model.save_pretrained(tmp)
            llm.tokenizer.save_pretrained(tmp)
            folder = converted_dir(tmp, quantization, digest=h.hexdigest(), name=name)
    return CT2LLM(folder, name=llm.name, quantization=quantization, **kw)


def load_ct2(
    source: str | os.PathLike[str],
    name: str,
    *,
    quantization: Quantization = "int8",
    **kw: Any,
) -> CT2LLM:
    """Convert (once) and load the model folder ``source`` (see :func:`converted_dir`)."""
    return CT2LLM(converted_dir(source, quantization), name=name, quantization=quantization, **kw)


_MIN_STATIC = 8  # shortest common start worth running as a static prompt (in tokens)

LENGTH_TOLERANCE = 16
"""Most prompt tokens a batch's longest prompt may have beyond its shortest. Measured on 2 idle
CPU cores, 64 zero-shot RecSearch-v0 prompts, 128 new tokens, 2 generators: one batch gave 36
tokens/s, batches within 16 tokens 122, within 48 tokens 109, one length per batch 84."""


def _length_batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Row indices sorted by length and cut into batches of at most ``size`` rows whose
    lengths are within :data:`LENGTH_TOLERANCE` of the batch's first."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if (
            batches
            and len(batches[-1]) < size
            and lengths[i] - lengths[batches[-1][0]] <= LENGTH_TOLERANCE
        ):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _shared_prefix(rows: Sequence[Sequence[int]]) -> int:
    """The length of the token prefix every row starts with, leaving each row one token."""
    first, n = rows[0], min(len(r) for r in rows) - 1
    k = 0
    while k < n and all(r[k] == first[k] for r in rows):
        k += 1
    return k


class CT2LLM:
    """A CTranslate2 generator implementing :class:`~recgym.llm.LLM`.

    Args:
        folder: a converted model folder (:func:`converted_dir`), with its tokenizer.
        name: the name the model was asked for by (kept in leaderboard rows).
        quantization: the weight type the folder holds; the compute type follows it.
        device: ``"cpu"`` or ``"cuda"`` (default: CUDA when CTranslate2 sees a GPU).
        threads: CPU threads of the engine (default: the cores this process may use): as many
            single-threaded generators, each running its own batches.
        batch_size: default prompts per ``generate_batch`` call (``None``: all).

    Attributes:
        tokenizer: the transformers tokenizer.
        model: always ``None``: there is no torch module to train.
        eos_ids: the token ids that end a completion.
    """

    model: Any = None

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        name: str,
        quantization: Quantization = "int8",
        device: str | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        _check_quantization(quantization)
        ct2 = _ct2()
        self.folder = Path(folder)
        self.name = name
        self.quantization = quantization
        self.device = device or ("cuda" if ct2.get_cuda_device_count() > 0 else "cpu")
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = int(threads)
        self.batch_size = batch_size
        # On CUDA, int8 weights compute with float16 activations (CTranslate2's fast GPU path).
        gpu_int8 = self.device != "cpu" and quantization == "int8"
        self.compute_type = "int8_float16" if gpu_int8 else quantization
        # CPU: one single-threaded generator ("lane") per thread, batches spread over them.
        # Measured on 2 cores (SmolLM2-135M int8, 64 rows x 64 tokens): 2 lanes of 1 thread
        # 660 tokens/s, 1 lane of 2 threads 317, 1 lane of 1 thread 327: CTranslate2's
        # intra-op threads cost more than they share out on a model this small.
        self.lanes = [
            self._new_generator() for _ in range(self.threads if self.device == "cpu" else 1)
        ]
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        config = json.loads((self.folder / "config.json").read_text())
        eos = config.get("eos_token")
        ids = [self.tokenizer.eos_token_id]
        if isinstance(eos, str):
            ids.append(self.tokenizer.convert_tokens_to_ids(eos))
        gen_config = self.folder / "generation_config.json"
        if gen_config.is_file():
            more = json.loads(gen_config.read_text()).get("eos_token_id")
            ids += more if isinstance(more, list) else [more]
        self.eos_ids = sorted({int(i) for i in ids if i is not None})

    def _new_generator(self) -> Any:
        return _ct2().Generator(
            str(self.folder),
            device=self.device,
            compute_type=self.compute_type,
            intra_threads=1 if self.device == "cpu" else 0,
        )

    @property
    def backend(self) -> str:
        """The backend and weight type, as leaderboard rows record it (``"ct2-int8"``)."""
        return f"ct2-{self.quantization}"

    def __repr__(self) -> str:
        return f"CT2LLM(name={self.name!r}, device={self.device}, quantization={self.quantization})"

    def chat_prompt(self, messages: Prompt) -> str:
        """Render ``messages`` with the tokenizer's chat template (see :class:`~recgym.llm.LLM`)."""
        return template_prompt(self.tokenizer, self.name, messages)

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        chat: bool = True,
        stop: Sequence[str] | None = None,
        batch_size: int | None = None,
    ) -> list[Generation]:
        """Complete each prompt (see :meth:`recgym.llm.LLM.generate`).

        Prompts are sorted by length and cut into batches of at most ``batch_size`` prompts
        whose lengths differ by at most :data:`LENGTH_TOLERANCE` tokens (CTranslate2 reads a
        batch's prompt tokens past the shortest prompt one decoding step at a time, which on
        a CPU costs more than a smaller batch); the completions come back in the prompts'
        order. Sampling is seeded per call from its rows' seeds (see the module's note).
        """
        check_prompts(prompts, chat)
        check_sampling(max_new_tokens, temperature, top_p)
        texts = [self.chat_prompt(p) if chat else str(p) for p in prompts]
        ids = self.tokenizer(texts, add_special_tokens=not chat)["input_ids"]
        seeds = row_seeds(seed, len(texts)) if temperature > 0 else None
        size = batch_rows(batch_size, self.batch_size, len(texts))
        lanes = self.lanes if seeds is None else self._seeded_lanes(seeds)
        outs = self._run_batches(
            lanes,
            ids,
            size,
            lambda lane, rows: self._submit(lane, rows, max_new_tokens, temperature, top_p, stop),
        )
        return [
            ids_to_generation(self.tokenizer, list(out.sequences_ids[0]), text, stop, self.eos_ids)
            for out, text in zip(outs, texts, strict=True)
        ]

    def _run_batches(
        self,
        lanes: Sequence[Any],
        ids: Sequence[Sequence[int]],
        size: int,
        submit: Callable[[Any, list[list[int]]], list[Any]],
    ) -> list[Any]:
        """CTranslate2's result for each row of ``ids``, in their order.

        The rows are cut into :func:`_length_batches`; batch b goes to lane b % k via
        ``submit(lane, rows)`` (asynchronous results, one per row). A lane has one worker
        thread, so it runs its batches in the order they were sent, and the lanes run side by
        side.
        """
        batches = _length_batches([len(row) for row in ids], size)
        pending = [
            submit(lanes[b % len(lanes)], [list(ids[i]) for i in rows])
            for b, rows in enumerate(batches)
        ]
        results: list[Any] = [None] * len(ids)
        for rows, futures in zip(batches, pending, strict=True):
            for i, future in zip(rows, futures, strict=True):
                results[i] = future.result()
        return results

    def next_token_logits(
        self, ids: Sequence[Sequence[int]], *, batch_size: int | None = None
    ) -> Any:
        """The next-token logits after each token sequence: a float32 numpy array
        ``(len(ids), vocab)`` (what a verbalizer reads; nothing is generated).

        Sequences are batched by length and spread over the lanes as :meth:`generate` does.
        """
        import numpy as np

        if not ids or any(not r for r in ids):
            raise ValueError("next_token_logits needs at least one non-empty token sequence")
        size = batch_rows(batch_size, self.batch_size, len(ids))

        def submit(lane: Any, rows: list[list[int]]) -> list[Any]:
            tokens = [self.tokenizer.convert_ids_to_tokens(row) for row in rows]
            return list(
                lane.generate_batch(
                    tokens,
                    asynchronous=True,
                    return_logits_vocab=True,
                    max_length=1,
                    include_prompt_in_result=False,
                    sampling_topk=1,
                )
            )

        results = self._run_batches(self.lanes, ids, size, submit)
        # One row of logits per decoding step, the prompt's unread tokens first: the last row
        # is the distribution after the whole sequence.
        return np.stack([np.asarray(r.logits[0], dtype=np.float32)[-1] for r in results])

    def _seeded_lanes(self, seeds: Sequence[int]) -> list[Any]:
        """Fresh lanes whose random streams start from the call's seeds.

        CTranslate2 seeds a worker thread's stream from the process-wide seed when the thread
        first samples. Each lane is started and made to sample one token right after its own
        seed is set, so its stream is fixed before the next lane's seed replaces it. Starting a
        lane costs ~0.2 s on 2 CPU cores.
        """
        ct2 = _ct2()
        lanes = []
        for lane in range(len(self.lanes)):
            digest = hashlib.sha256(json.dumps([*seeds, lane]).encode()).digest()
            ct2.set_random_seed(int.from_bytes(digest[:4], "little") or 1)  # 0: unseeded
            generator = self._new_generator()
            generator.generate_batch([[self.tokenizer.eos_token]], max_length=1, sampling_topk=0)
            lanes.append(generator)
        return lanes

    def _submit(
        self,
        generator: Any,
        ids: list[list[int]],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        stop: Sequence[str] | None,
    ) -> list[Any]:
        """Send one batch to a lane; one ``AsyncGenerationResult`` per row."""
        options: dict[str, Any] = {
            "max_length": max_new_tokens,
            "include_prompt_in_result": False,
            "end_token": self.eos_ids,
            "return_end_token": True,
        }
        if temperature == 0:
            options["sampling_topk"] = 1
        else:
            options.update(sampling_topk=0, sampling_topp=top_p, sampling_temperature=temperature)
        stop_strings = [s for s in stop or () if s]
        if stop_strings:
            options["callback"] = self._stop_callback(len(ids), stop_strings)
        shared = _shared_prefix(ids)
        if shared >= _MIN_STATIC:
            # The rows' common start (the system turn, a shared instruction) is run once and
            # its state kept by the generator for later calls, instead of once per row.
            options["static_prompt"] = self.tokenizer.convert_ids_to_tokens(ids[0][:shared])
            ids = [row[shared:] for row in ids]
        tokens = [self.tokenizer.convert_ids_to_tokens(row) for row in ids]
        return list(generator.generate_batch(tokens, asynchronous=True, **options))

    def _stop_callback(self, n: int, stop: list[str]) -> Callable[[Any], bool]:
        """A per-token callback that ends a row once its text holds a stop string."""
        generated: list[list[int]] = [[] for _ in range(n)]

        def on_token(step: Any) -> bool:
            row = generated[step.batch_id]
            row.append(int(step.token_id))
            text = str(self.tokenizer.decode(row, skip_special_tokens=True))
            return cut_at_stop(text, stop)[1]

        return on_token
