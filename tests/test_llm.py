"""recgym.llm: the fake backend, name resolution, the GGUF cache, and the real SmolLM2 on CPU.

The SmolLM2 tests are marked ``slow``: they convert the GGUF once into a temporary cache
(~20 s) and generate a few dozen tokens per test on CPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import recgym.llm as rl
from recgym.error import CacheWarning, ModelLoadError, UnknownNameError
from recgym.llm import embedded
from recgym.llm.base import cut_at_stop, row_seeds
from recgym.llm.fake import KINDS, MALFORMED_KINDS, ByteTokenizer, FakeLLM
from recgym.utils.files import write_manifest

ANSWER = re.compile(r"<think>(.*?)</think>\n<answer>(.*?)</answer>", re.S)
PROMPTS = [f"I loved {w} movies about dragons and castles" for w in ("fantasy", "epic", "old")]

# ---------------------------------------------------------------------------- fake backend


def test_fake_is_an_llm_and_renders_chatml() -> None:
    llm = rl.load("fake")
    assert isinstance(llm, FakeLLM) and isinstance(llm, rl.LLM)
    assert llm.chat_prompt("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_fake_is_deterministic_by_prompt_and_seed() -> None:
    a, b = FakeLLM(), FakeLLM()
    prompts = [f"prompt {i} about jazz records" for i in range(20)]
    greedy = a.generate(prompts)
    assert greedy == b.generate(prompts)
    # Greedy ignores the seed, like a real decoder; sampling depends on it, reproducibly.
    assert greedy == a.generate(prompts, seed=123)
    s1 = a.generate(prompts, temperature=1.0, seed=5)
    assert s1 == b.generate(prompts, temperature=1.0, seed=5)
    s2 = a.generate(prompts, temperature=1.0, seed=6)
    assert [g.text for g in s1] != [g.text for g in s2]


def test_fake_per_row_seeds_do_not_depend_on_the_batch() -> None:
    llm = FakeLLM()
    full = llm.generate(PROMPTS, temperature=1.0, seed=[11, 12, 13])
    part = llm.generate([PROMPTS[2], PROMPTS[0]], temperature=1.0, seed=[13, 11])
    assert part == [full[2], full[0]]


def test_every_malformed_kind_is_reachable() -> None:
    llm = FakeLLM(mode="malformed")
    seen = {llm.kind_of(llm.chat_prompt(f"prompt {i}"), seed=None) for i in range(200)}
    assert seen == set(MALFORMED_KINDS)
    mixed = FakeLLM()
    kinds = [mixed.kind_of(f"p{i}", seed=s) for i in range(100) for s in range(5)]
    assert set(kinds) == set(KINDS)
    assert 0.35 < kinds.count("answer") / len(kinds) < 0.65


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_has_its_defect(kind: str) -> None:
    prompt = "Recommend a quiet jazz album for studying tonight"
    (g,) = FakeLLM(kinds=[kind]).generate([prompt], max_new_tokens=256)
    answers = re.findall(r"<answer>(.*?)</answer>", g.text, re.S)
    if kind == "answer":
        think, body = ANSWER.fullmatch(g.text).groups()
        assert think
        words = json.loads(body)["query"].split()
        assert words and all(w in prompt.lower() for w in words)
    elif kind == "no_answer_tag":
        assert "<answer>" not in g.text and "</think>" in g.text
    elif kind == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(answers[0])
    elif kind == "missing_query":
        assert "query" not in json.loads(answers[0])
    elif kind == "empty":
        assert g.text == "" and g.finish_reason == "stop"
    elif kind == "long":
        assert g.finish_reason == "length" and len(g.token_ids) == 256
    elif kind == "duplicated_tags":
        assert len(answers) == 2 and g.text.count("<think>") == 2


def test_fake_batch_shapes_and_token_ids() -> None:
    llm = FakeLLM(mode="wellformed")
    convo = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "jazz"}]
    out = llm.generate([*PROMPTS, convo], max_new_tokens=256)
    assert len(out) == 4 and all(isinstance(g, rl.Generation) for g in out)
    assert out[3].prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    for g in out:
        assert g.finish_reason == "stop"
        assert g.token_ids == [*g.text.encode(), ByteTokenizer.eos_token_id]
    assert llm.generate([]) == []
    short = llm.generate(PROMPTS[:1], max_new_tokens=8)[0]
    assert short.finish_reason == "length" and short.token_ids == list(b"<think>T")


def test_fake_stop_strings_and_fixed_responses() -> None:
    llm = FakeLLM(responses=["one. two.", "three"])
    out = llm.generate(["a", "b", "c"], stop=["."])
    assert [g.text for g in out] == ["one", "three", "one"]
    assert out[0].token_ids == list(b"one.") and out[0].finish_reason == "stop"
    assert llm.generate(["d"], chat=False)[0].text == "three"  # the script goes on across calls


def test_fake_rejects_bad_arguments() -> None:
    llm = FakeLLM()
    with pytest.raises(TypeError, match="list of prompts"):
        llm.generate("one prompt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="chat=False"):
        llm.generate([[{"role": "user", "content": "x"}]], chat=False)
    with pytest.raises(ValueError, match="one seed per prompt"):
        llm.generate(["a", "b"], temperature=1.0, seed=[1])
    with pytest.raises(ValueError, match="temperature"):
        llm.generate(["a"], temperature=-1)
    with pytest.raises(UnknownNameError, match="wellformed"):
        FakeLLM(mode="nonsense")
    with pytest.raises(UnknownNameError, match="invalid_json"):
        FakeLLM(kinds=["nonsense"])


def test_fake_backend_imports_no_torch() -> None:
    code = (
        "import sys, recgym, recgym.llm\n"
        "out = recgym.llm.load('fake').generate(['hello there'], temperature=1.0, seed=[3])\n"
        "assert out[0].prompt\n"
        "heavy = [m for m in ('torch', 'transformers', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_row_seeds_and_stop_helpers() -> None:
    seeds = row_seeds(7, 4)
    assert seeds == row_seeds(7, 4) and len(set(seeds)) == 4 and seeds != row_seeds(8, 4)
    assert row_seeds([5, 5, 9], 3) == [5, 5, 9]
    assert cut_at_stop("ab. cd\n", [".", "\n"]) == ("ab", True)
    assert cut_at_stop("abc", None) == ("abc", False)


def test_per_row_sampler_distribution_and_independence() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from recgym.llm.hf import PerRowSampler

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    scores = probs.log().expand(4000, 4)

    def draw(seeds: list[int], top_p: float = 1.0) -> torch.Tensor:
        out = PerRowSampler(seeds, temperature=1.0, top_p=top_p)(None, scores[: len(seeds)])
        return out.argmax(dim=-1)

    picks = draw(list(range(4000)))
    freq = torch.bincount(picks, minlength=4) / 4000
    assert torch.allclose(freq, probs, atol=0.03)
    nucleus = torch.bincount(draw(list(range(4000)), top_p=0.75), minlength=4) / 4000
    assert nucleus[2:].sum() == 0 and abs(nucleus[0] - 0.5 / 0.8) < 0.03
    # A row's draw depends on its seed only, not on its neighbours or its position.
    assert torch.equal(draw(list(range(100)))[50:80], draw(list(range(50, 80))))
    assert not torch.equal(draw(list(range(50, 80))), draw(list(range(51, 81))))


# ---------------------------------------------------------------------------- resolution


def test_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(UnknownNameError, match=r"did you mean 'smollm2-135m'.*fake"):
        rl.load("smollm2")


def test_missing_or_invalid_local_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model directory"):
        rl.load(str(tmp_path / "missing" / "model"))
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        rl.load(str(tmp_path))


def test_trust_remote_code_is_refused() -> None:
    with pytest.raises(ValueError, match="trust_remote_code=False"):
        rl.load("fake", trust_remote_code=True)


def test_hub_id_not_cached_offline(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    # A subprocess: huggingface_hub reads HF_HUB_OFFLINE once, at import.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    code = (
        "import recgym.llm\n"
        "from recgym.error import ModelLoadError\n"
        "try:\n"
        "    recgym.llm.load('recgym-test/no-such-model')\n"
        "except ModelLoadError as e:\n"
        "    assert 'HF_HUB_OFFLINE' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('loaded a model that does not exist')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ---------------------------------------------------------------------------- GGUF cache


def _complete_folder(folder: Path, sha: str) -> None:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    marker = {"source_sha256": sha, "files": {"model.safetensors": 10}}
    (folder / embedded.MARKER).write_text(json.dumps(marker))


def test_half_written_cache_is_detected(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    _complete_folder(folder, "abc")
    assert embedded._is_complete(folder, "abc")
    assert not embedded._is_complete(folder, "other-sha")
    (folder / "model.safetensors").write_bytes(b"x" * 3)  # truncated weights
    assert not embedded._is_complete(folder, "abc")
    (folder / embedded.MARKER).unlink()
    assert not embedded._is_complete(folder, "abc")


def test_cache_hit_skips_fetch_and_conversion(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = embedded._pinned_sha256(embedded.EMBEDDED["smollm2-135m"])
    _complete_folder(tmp_cache / "models" / "smollm2-135m", sha)
    monkeypatch.setattr(embedded, "_convert_gguf", _must_not_run)
    monkeypatch.setattr("recgym.data.artifacts.fetch", _must_not_run)
    assert rl.embedded_model_dir("smollm2-135m") == tmp_cache / "models" / "smollm2-135m"


def test_stale_cache_is_replaced_atomically(tmp_path: Path) -> None:
    target, fresh = tmp_path / "model", tmp_path / "fresh"
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"half")
    _complete_folder(fresh, "abc")
    embedded._swap_into_place(fresh, target, "abc")
    assert embedded._is_complete(target, "abc") and not fresh.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the stale copy is gone


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the cached branch must not fetch or convert the GGUF")


@pytest.mark.parametrize("damage", ["flip", "truncate", "marker"])
def test_damaged_converted_model_is_reported_and_converted_again(
    tmp_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    weights = bytes(range(256)) * 40
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"gguf")
    conversions: list[Path] = []

    def convert(source: Path, target: Path, sha256: str) -> None:  # the real one's steps
        conversions.append(source)
        tmp = Path(tempfile.mkdtemp(dir=target.parent))
        (tmp / "model.safetensors").write_bytes(weights)
        write_manifest(tmp, source_sha256=sha256)
        embedded._swap_into_place(tmp, target, sha256)

    fetched = type("Fetched", (), {"files": {"model.gguf": gguf}})()
    monkeypatch.setattr("recgym.data.artifacts.fetch", lambda *a, **k: fetched)
    monkeypatch.setattr(embedded, "_convert_gguf", convert)
    folder = rl.embedded_model_dir("smollm2-135m", progress=False)
    assert rl.embedded_model_dir("smollm2-135m", progress=False) == folder
    assert len(conversions) == 1  # the second call loaded the cache
    path = folder / "model.safetensors"
    if damage == "flip":
        with open(path, "r+b") as f:
            f.seek(1000)
            f.write(b"\xff")
        message = r"model\.safetensors has sha256 .*corrupted"
    elif damage == "truncate":
        path.write_bytes(weights[:100])
        message = r"model\.safetensors has 100 bytes, expected 10240"
    else:
        (folder / embedded.MARKER).unlink()  # a conversion killed before its last write
        message = "no readable manifest"
    with pytest.warns(CacheWarning, match=f"{message}.*; converting it again"):
        assert rl.embedded_model_dir("smollm2-135m", progress=False) == folder
    assert len(conversions) == 2 and path.read_bytes() == weights
    assert embedded._is_complete(folder, embedded._pinned_sha256(embedded.EMBEDDED["smollm2-135m"]))


# ---------------------------------------------------------------------------- real SmolLM2


@pytest.fixture(scope="module")
def smol_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh RECGYM_CACHE holding only the fetched GGUF and a half-written model folder."""
    from recgym.data.artifacts import fetch

    gguf_dir = fetch("smollm2-135m-gguf", progress=False).files["model.gguf"].parent
    root = tmp_path_factory.mktemp("cache")
    shutil.copytree(gguf_dir, root / "artifacts" / "smollm2-135m-gguf" / gguf_dir.name)
    half = root / "models" / "smollm2-135m"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"killed mid-write")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECGYM_CACHE", str(root))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield root


@pytest.fixture(scope="module")
def smol(smol_cache: Path) -> rl.LLM:
    return rl.load("smollm2-135m", progress=False)


@pytest.mark.slow
def test_first_load_builds_the_safetensors_cache(smol: rl.LLM, smol_cache: Path) -> None:
    import torch

    folder = smol_cache / "models" / "smollm2-135m"
    marker = json.loads((folder / embedded.MARKER).read_text())
    assert marker["source_sha256"].startswith("b179c952")
    assert (folder / "model.safetensors").stat().st_size > 100_000_000  # rebuilt, not the stub
    assert smol.path == str(folder)
    assert isinstance(smol.model, torch.nn.Module) and smol.model.dtype == torch.float32
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.slow
def test_second_load_reads_the_cache(
    smol: rl.LLM, smol_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(embedded, "_convert_gguf", _must_not_run)
    monkeypatch.setattr("recgym.data.artifacts.fetch", _must_not_run)
    again = rl.load("smollm2-135m")
    w1 = smol.model.get_input_embeddings().weight
    assert torch.equal(again.model.get_input_embeddings().weight, w1)


@pytest.mark.slow
def test_chat_template_is_chatml(smol: rl.LLM) -> None:
    text = smol.chat_prompt([{"role": "user", "content": "Hi"}])
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert text.startswith("<|im_start|>system\n")  # SmolLM2's default system prompt
    assert smol.tokenizer.eos_token == "<|im_end|>"


@pytest.mark.slow
def test_greedy_is_deterministic_and_batch_invariant(smol: rl.LLM) -> None:
    prompts = ["Hi", "Name a fruit.", "Recommend three science fiction novels about robots."]
    batched = smol.generate(prompts, max_new_tokens=16)
    assert smol.generate(prompts, max_new_tokens=16) == batched
    assert smol.generate(prompts, max_new_tokens=16, batch_size=2) == batched
    for prompt, row in zip(prompts, batched, strict=True):
        assert smol.generate([prompt], max_new_tokens=16) == [row]
        assert 0 < len(row.token_ids) <= 16 and row.finish_reason in ("stop", "length")
        pad = smol.tokenizer.pad_token_id
        assert pad not in row.token_ids[:-1]  # no padding inside a completion


@pytest.mark.slow
def test_sampling_seeds(smol: rl.LLM) -> None:
    prompts = ["Tell me about cats.", "Suggest a board game for two.", "Describe the sea."]
    kw = {"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.95}
    first = smol.generate(prompts, seed=7, **kw)
    assert smol.generate(prompts, seed=7, **kw) == first
    assert smol.generate(prompts, seed=8, **kw) != first
    rows = smol.generate(prompts, seed=[1, 2, 3], **kw)
    assert smol.generate([prompts[2], prompts[0]], seed=[3, 1], **kw) == [rows[2], rows[0]]
    assert smol.generate([prompts[1]], seed=[2], **kw) == [rows[1]]


@pytest.mark.slow
def test_rainy_day_answer_is_english(smol: rl.LLM) -> None:
    (g,) = smol.generate(["What is a good movie for a rainy day?"], max_new_tokens=32)
    words = re.findall(r"[A-Za-z]+", g.text)
    assert len(words) >= 5 and "<|im" not in g.text
    assert {w.lower() for w in words} & {"the", "a", "is", "movie", "rainy", "day", "i"}
    (cut,) = smol.generate([g.prompt], max_new_tokens=32, chat=False, stop=["."])
    assert "." not in cut.text and cut.finish_reason == "stop"
    assert smol.tokenizer.decode(cut.token_ids).endswith(".")


@pytest.mark.slow
def test_a_corrupted_converted_model_is_converted_again(smol: rl.LLM, smol_cache: Path) -> None:
    # Last of the SmolLM2 tests: it converts the GGUF a second time (~20 s).
    import torch

    path = smol_cache / "models" / "smollm2-135m" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    broken = path.with_name("broken")
    broken.write_bytes(bytes(data))
    os.replace(broken, path)  # a new file: the loaded model's memory map keeps the old one
    with pytest.warns(CacheWarning, match=r"model\.safetensors has sha256 .*; converting"):
        again = rl.load("smollm2-135m", progress=False)
    weights = smol.model.state_dict()
    for name, tensor in again.model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
