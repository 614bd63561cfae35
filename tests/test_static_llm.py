"""The static-KV-cache generation backend: same greedy tokens as transformers ``generate``,
current weights (LoRA folded in), per-row seeded sampling on the device, CPU fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import tiny_llm  # noqa: E402

from recgym.llm.hf import HFLLM  # noqa: E402
from recgym.llm.static import StaticCacheLLM, fast_generator, uniform_from_seeds  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = [
    "Recommend a movie for a rainy day.",
    "hi",
    "List three fruits and say why each one is healthy, in some detail please.",
]


def _tokens(generations: list[Any]) -> list[list[int]]:
    return [g.token_ids for g in generations]


def test_greedy_equals_transformers_generate_on_mixed_length_prompts(tiny_dir: Path) -> None:
    llm = tiny_llm(tiny_dir)
    fast = StaticCacheLLM(llm, force=True, length_step=16)
    for chat in (True, False):
        want = llm.generate(PROMPTS, max_new_tokens=20, chat=chat)
        got = fast.generate(PROMPTS, max_new_tokens=20, chat=chat)
        assert _tokens(got) == _tokens(want)
        assert [g.text for g in got] == [g.text for g in want]
        assert [g.prompt for g in got] == [g.prompt for g in want]
    # Batches of one and of all give the same rows (left padding is masked out).
    alone = [fast.generate([p], max_new_tokens=20)[0].token_ids for p in PROMPTS]
    assert alone == _tokens(fast.generate(PROMPTS, max_new_tokens=20))


def test_rows_stop_at_their_own_end_token_and_stop_strings(tiny_dir: Path) -> None:
    plain = tiny_llm(tiny_dir)
    first = plain.generate(PROMPTS, max_new_tokens=12)
    # Make the third token row 0 emits an end token: row 0 stops there, the others go on.
    end = first[0].token_ids[2]
    model = plain.model
    model.generation_config.eos_token_id = [model.generation_config.eos_token_id, end]
    llm = HFLLM(model, plain.tokenizer, name="tiny")
    fast = StaticCacheLLM(llm, force=True)
    want = llm.generate(PROMPTS, max_new_tokens=12)
    got = fast.generate(PROMPTS, max_new_tokens=12)
    assert got[0].finish_reason == "stop" and got[0].token_ids == first[0].token_ids[:3]
    assert _tokens(got) == _tokens(want)
    assert [g.finish_reason for g in got] == [g.finish_reason for g in want]
    stop = [first[2].text[5:9]]
    with_stop = fast.generate(PROMPTS, max_new_tokens=12, stop=stop)
    assert with_stop[2].finish_reason == "stop" and stop[0] not in with_stop[2].text
    assert _tokens(with_stop) == _tokens(llm.generate(PROMPTS, max_new_tokens=12, stop=stop))


def test_generates_from_the_current_lora_weights_without_merging(tiny_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model

    llm = tiny_llm(tiny_dir)
    base = {k: v.detach().clone() for k, v in llm.model.named_parameters()}
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
    llm.model = get_peft_model(llm.model, lora)
    fast = StaticCacheLLM(llm, force=True)
    before = _tokens(fast.generate(PROMPTS, max_new_tokens=16))
    torch.manual_seed(1)
    with torch.no_grad():  # a "training step" that moves every adapter
        for name, param in llm.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    after = _tokens(fast.generate(PROMPTS, max_new_tokens=16))
    assert after != before
    assert after == _tokens(llm.generate(PROMPTS, max_new_tokens=16))
    with llm.model.disable_adapter():  # the reference policy of GRPO's KL term
        assert _tokens(fast.generate(PROMPTS, max_new_tokens=16)) == before
    for name, param in llm.model.named_parameters():
        if "lora_" not in name:
            plain = name.replace("base_model.model.", "").replace("base_layer.", "")
            assert torch.equal(param, base[plain]), name


def test_sampling_uses_per_row_seeds(tiny_dir: Path) -> None:
    fast = StaticCacheLLM(tiny_llm(tiny_dir), force=True)
    kwargs = {"max_new_tokens": 16, "temperature": 1.0, "top_p": 0.95}
    a = _tokens(fast.generate(PROMPTS, seed=[1, 2, 3], **kwargs))
    # A row's sample depends on its prompt and seed, not on its neighbours' seeds or its
    # position. (Across batch shapes the logits differ in the last bits, and this random
    # model's near-flat distributions turn that into other draws, as with any sampler.)
    assert a == _tokens(fast.generate(PROMPTS[::-1], seed=[3, 2, 1], **kwargs))[::-1]
    assert a[1] == _tokens(fast.generate(PROMPTS, seed=[9, 2, 8], **kwargs))[1]
    assert a != _tokens(fast.generate(PROMPTS, seed=[4, 5, 6], **kwargs))
    assert fast.generate(PROMPTS, seed=7, **kwargs)[0].token_ids != a[0]  # not greedy
    # A nucleus this small keeps only the most likely token: greedy decoding.
    tiny_p = fast.generate(PROMPTS, seed=[1, 2, 3], max_new_tokens=16, temperature=1.0, top_p=1e-6)
    assert _tokens(tiny_p) == _tokens(fast.generate(PROMPTS, max_new_tokens=16))


def test_device_sampler_follows_temperature_and_top_p(tiny_dir: Path) -> None:
    fast = StaticCacheLLM(tiny_llm(tiny_dir), force=True)
    fast.generate(["warm"], max_new_tokens=1)  # builds the weight buffers
    n = 4000
    batch = fast._buffers(n, 8)
    batch.seeds.copy_(torch.arange(n))
    batch.finished.zero_()
    batch.sampling = True
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(n, 4).clone()

    def freq(temperature: float, top_p: float) -> torch.Tensor:
        batch.temperature.fill_(temperature)
        batch.top_p.fill_(top_p)
        return torch.bincount(fast._sample(logits, batch), minlength=4) / n

    assert torch.allclose(freq(1.0, 1.0), probs, atol=0.03)
    nucleus = freq(1.0, 0.75)
    assert nucleus[2:].sum() == 0 and abs(nucleus[0] - 0.5 / 0.8) < 0.03
    hot = probs.pow(1 / 2.0) / probs.pow(1 / 2.0).sum()
    assert torch.allclose(freq(2.0, 1.0), hot, atol=0.03)
    assert torch.equal(freq(0.0, 1.0), torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_uniform_from_seeds_is_uniform_and_counter_based() -> None:
    seeds = torch.arange(20_000, dtype=torch.long)
    u = uniform_from_seeds(seeds, torch.tensor(0))
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    hist = torch.histc(u, bins=10, min=0.0, max=1.0) / len(u)
    assert torch.allclose(hist, torch.full((10,), 0.1), atol=0.01)
    v = uniform_from_seeds(seeds, torch.tensor(1))
    assert abs(float(torch.corrcoef(torch.stack([u, v]))[0, 1])) < 0.03
    assert torch.equal(uniform_from_seeds(seeds[5:9], torch.tensor(0)), u[5:9])


def test_cpu_falls_back_to_the_default_backend(tiny_dir: Path) -> None:
    llm = tiny_llm(tiny_dir)
    fast = StaticCacheLLM(llm)
    assert not fast.active and not fast.graphs
    kwargs = {"max_new_tokens": 8, "temperature": 0.8, "seed": [1, 2, 3]}
    assert _tokens(fast.generate(PROMPTS, **kwargs)) == _tokens(llm.generate(PROMPTS, **kwargs))
    assert fast_generator(llm) is llm  # on CPU the default backend is the fast one


def test_unsupported_models_and_bad_arguments(tiny_dir: Path) -> None:
    llm = tiny_llm(tiny_dir)
    llm.model.config.model_type = "gpt2"
    with pytest.raises(ValueError, match="'gpt2'"):
        StaticCacheLLM(llm)
    llm.model.config.model_type = "llama"
    fast = StaticCacheLLM(llm, force=True)
    with pytest.raises(TypeError, match="list of prompts"):
        fast.generate("one prompt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_new_tokens"):
        fast.generate(["a"], max_new_tokens=0)
    with pytest.raises(ValueError, match="length_step"):
        StaticCacheLLM(llm, length_step=0)


@pytest.mark.gpu
def test_cuda_graphs_match_eager_decoding_on_the_gpu(tiny_dir: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import recgym.llm

    llm = recgym.llm.load(str(tiny_dir), device="cuda", dtype="float32", progress=False)
    graphed = StaticCacheLLM(llm, dtype=torch.float32)
    eager = StaticCacheLLM(llm, dtype=torch.float32, cuda_graphs=False)
    assert graphed.graphs and not eager.graphs
    want = _tokens(llm.generate(PROMPTS, max_new_tokens=20))
    assert _tokens(graphed.generate(PROMPTS, max_new_tokens=20)) == want
    assert _tokens(eager.generate(PROMPTS, max_new_tokens=20)) == want
    kwargs = {"max_new_tokens": 20, "temperature": 0.7, "top_p": 0.9, "seed": [1, 2, 3]}
    assert _tokens(graphed.generate(PROMPTS, **kwargs)) == _tokens(
        eager.generate(PROMPTS, **kwargs)
    )
