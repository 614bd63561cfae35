"""The CTranslate2 backend (recgym.llm.ct2): conversion cache, exactness, adapters, sampling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import tiny_llm

pytest.importorskip("ctranslate2")
torch = pytest.importorskip("torch")

import recgym.llm  # noqa: E402
from recgym.error import ModelLoadError  # noqa: E402
from recgym.llm.ct2 import CT2LLM, converted_dir, from_hf  # noqa: E402

PROMPTS = [
    "Recommend a movie for a rainy day",
    "hi",
    "List three colours and explain why each of them is a good colour for a kitchen wall",
]


def _tokens(gens: list[Any]) -> list[list[int]]:
    return [g.token_ids for g in gens]


@pytest.fixture
def ct2_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache for conversions (the source models stay where they are)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("RECGYM_CACHE", str(root))
    return root


def test_float32_greedy_matches_transformers(tiny_dir: Path, ct2_cache: Path) -> None:
    fast = recgym.llm.load(str(tiny_dir), backend="ct2", quantization="float32", threads=1)
    assert isinstance(fast, CT2LLM) and fast.model is None and fast.backend == "ct2-float32"
    ref = tiny_llm(tiny_dir).generate(PROMPTS, max_new_tokens=12)
    got = fast.generate(PROMPTS, max_new_tokens=12)
    assert _tokens(got) == _tokens(ref)
    assert [g.text for g in got] == [g.text for g in ref]
    assert [g.prompt for g in got] == [g.prompt for g in ref]
    # Batches are sorted by length inside; the answers still come back in the prompts' order.
    one_by_one = [fast.generate([p], max_new_tokens=12)[0].token_ids for p in PROMPTS]
    assert _tokens(fast.generate(PROMPTS, max_new_tokens=12, batch_size=2)) == one_by_one


def test_conversion_is_cached_by_the_source_digest(
    tiny_dir: Path, ct2_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = converted_dir(tiny_dir, "int8")
    assert (first / "model.bin").is_file() and (first / "tokenizer.json").is_file()
    assert converted_dir(tiny_dir, "float32") != first

    import ctranslate2.converters

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(ctranslate2.converters.TransformersConverter, "convert", refuse)
    assert converted_dir(tiny_dir, "int8") == first
    # Other weights under the same folder name are another model: converted again.
    import shutil

    changed = tmp_path / tiny_dir.name
    shutil.copytree(tiny_dir, changed)
    config = json.loads((changed / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(AssertionError, match="converted again"):
        converted_dir(changed, "int8")


def test_a_damaged_conversion_is_rebuilt(tiny_dir: Path, ct2_cache: Path) -> None:
    folder = converted_dir(tiny_dir, "int8")
    (folder / "model.bin").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="model.bin"):
        again = converted_dir(tiny_dir, "int8")
    assert again == folder and (folder / "model.bin").stat().st_size > 1000


def test_lora_adapter_is_folded_before_conversion(tiny_dir: Path, ct2_cache: Path) -> None:
    from peft import LoraConfig, get_peft_model

    llm = tiny_llm(tiny_dir)
    llm.model = get_peft_model(
        llm.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
    )
    plain = _tokens(from_hf(llm, "float32", threads=1).generate(PROMPTS, max_new_tokens=12))
    torch.manual_seed(1)
    with torch.no_grad():  # a trained adapter: every LoRA B moved off zero
        for name, param in llm.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    before = {k: v.clone() for k, v in llm.model.state_dict().items()}
    fast = from_hf(llm, "float32", threads=1)
    got = _tokens(fast.generate(PROMPTS, max_new_tokens=12))
    assert got != plain
    assert got == _tokens(llm.generate(PROMPTS, max_new_tokens=12))
    after = llm.model.state_dict()  # the adapter was merged into a copy, not into the model
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any("lora_B" in k for k in after)


def test_seeded_sampling_is_reproducible(tiny_dir: Path, ct2_cache: Path) -> None:
    fast = recgym.llm.load(str(tiny_dir), backend="ct2", threads=1)
    kwargs: dict[str, Any] = {"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.95}
    a = _tokens(fast.generate(PROMPTS, seed=[1, 2, 3], **kwargs))
    assert a == _tokens(fast.generate(PROMPTS, seed=[1, 2, 3], **kwargs))
    assert a != _tokens(fast.generate(PROMPTS, seed=[4, 5, 6], **kwargs))
    greedy = _tokens(fast.generate(PROMPTS, max_new_tokens=12))
    assert a != greedy  # sampling is on: the full distribution, not the top token


def test_stop_strings_cut_like_every_backend(tiny_dir: Path, ct2_cache: Path) -> None:
    fast = recgym.llm.load(str(tiny_dir), backend="ct2", quantization="float32", threads=1)
    free = fast.generate(PROMPTS, max_new_tokens=16)
    stop = [free[2].text[5:9]]
    cut = fast.generate(PROMPTS, max_new_tokens=16, stop=stop)
    assert cut[2].finish_reason == "stop" and stop[0] not in cut[2].text
    assert free[2].text.startswith(cut[2].text)
    ref = tiny_llm(tiny_dir).generate(PROMPTS, max_new_tokens=16, stop=stop)
    assert _tokens(cut) == _tokens(ref)


def test_backend_errors_say_what_is_expected(tiny_dir: Path) -> None:
    with pytest.raises(ValueError, match="backend must be one of transformers, ct2"):
        recgym.llm.load(str(tiny_dir), backend="vllm")
    with pytest.raises(ValueError, match="no weights to convert"):
        recgym.llm.load("fake", backend="ct2")
    with pytest.raises(ValueError, match="quantization must be one of int8, float32"):
        recgym.llm.load(str(tiny_dir), backend="ct2", quantization="int4")
    with pytest.raises(ValueError, match="not dtype"):
        recgym.llm.load(str(tiny_dir), backend="ct2", dtype="float16")
    with pytest.raises(ModelLoadError, match="no model"):
        recgym.llm.load("./no/such/folder", backend="ct2")


@pytest.mark.slow
def test_embedded_model_float32_matches_and_int8_is_close() -> None:
    """The embedded SmolLM2 through CT2: float32 gives transformers' tokens; int8 runs and
    stays well-formed (its tokens differ: the figures are in benchmarks/perf/ct2_generate.py)."""
    ref = recgym.llm.load("smollm2-135m", progress=False)
    prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    expected = ref.generate(prompts, max_new_tokens=24)
    exact = recgym.llm.load("smollm2-135m", backend="ct2", quantization="float32")
    assert _tokens(exact.generate(prompts, max_new_tokens=24)) == _tokens(expected)
    fast = recgym.llm.load("smollm2-135m", backend="ct2")
    got = fast.generate(prompts, max_new_tokens=24)
    assert all(g.text.strip() and len(g.token_ids) <= 24 for g in got)
    assert all(g.finish_reason in ("stop", "length") for g in got)


def test_zero_shot_agent_records_the_engine(tiny_dir: Path, ct2_cache: Path) -> None:
    from agents.llm.zero_shot import ZeroShotLLMAgent

    kwargs: dict[str, Any] = {"max_new_tokens": 8, "temperature": 0.0, "batch_size": 2}
    fast = ZeroShotLLMAgent(
        str(tiny_dir), model_kwargs={"backend": "ct2", "quantization": "float32"}, **kwargs
    )
    plain = ZeroShotLLMAgent(str(tiny_dir), model_kwargs={"device": "cpu"}, **kwargs)
    assert fast.config()["backend"] == "ct2-float32" and "backend" not in plain.config()
    assert fast.act_batch(PROMPTS) == plain.act_batch(PROMPTS)


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=400), max_size=80),
    size=st.integers(min_value=1, max_value=70),
)
def test_length_batches_cover_every_row_once_within_the_tolerance(
    lengths: list[int], size: int
) -> None:
    from recgym.llm.ct2 import LENGTH_TOLERANCE, _length_batches

    batches = _length_batches(lengths, size)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        spread = [lengths[i] for i in batch]
        assert 1 <= len(batch) <= size and max(spread) - min(spread) <= LENGTH_TOLERANCE


def test_shared_prefix_leaves_every_row_a_token() -> None:
    from recgym.llm.ct2 import _shared_prefix

    assert _shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert _shared_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # not 3: each row keeps one token
    assert _shared_prefix([[7], [7, 8]]) == 0


def test_verbalizer_scores_on_ct2_with_the_adapter_folded(
    tiny_dir: Path, ct2_cache: Path, tmp_path: Path
) -> None:
    import gymnasium as gym
    import numpy as np
    from peft import LoraConfig, get_peft_model

    from agents.llm.verbalizer import VerbalizerAgent
    from recgym.models.popularity import PopularityRetriever

    env = gym.make("RecRank-v0", split="train", retriever=PopularityRetriever.movielens())
    observations = env.unwrapped.observations([0, 3, 7, 11], "validation")  # type: ignore[attr-defined]
    peft = get_peft_model(
        tiny_llm(tiny_dir).model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    torch.manual_seed(2)
    with torch.no_grad():  # a trained adapter: every LoRA B off zero
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    peft.save_pretrained(str(tmp_path / "adapter"))
    adapter = str(tmp_path / "adapter")
    ref = VerbalizerAgent(str(tiny_dir), adapter=adapter, model_kwargs={"device": "cpu"})
    fast = VerbalizerAgent(
        str(tiny_dir),
        adapter=adapter,
        batch_size=3,
        model_kwargs={"backend": "ct2", "quantization": "float32", "threads": 2},
    )
    assert fast.model is None and fast.config()["backend"] == "ct2-float32"
    expected = np.stack(ref.act_batch(observations))
    np.testing.assert_allclose(np.stack(fast.act_batch(observations)), expected, atol=1e-4)
    plain = VerbalizerAgent(str(tiny_dir), model_kwargs={"device": "cpu"})
    assert not np.allclose(np.stack(plain.act_batch(observations)), expected, atol=1e-3)
