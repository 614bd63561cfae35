"""Shared fixtures."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty RECGYM_CACHE for tests that must fetch for real."""
    root = tmp_path / "cache"
    monkeypatch.setenv("RECGYM_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random Llama with SmolLM2's tokenizer, loadable by ``recgym.llm.load``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    import recgym.llm

    tokenizer = AutoTokenizer.from_pretrained(
        recgym.llm.embedded_model_dir("smollm2-135m", progress=False)
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        # At the default 0.02, tied 32-dim embeddings cap every logit near 0.6: the loss could
        # not fall below ln(49152) whatever the adapter learned.
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    the tiny models' ops are too small to share out, and on a busy 2-core machine two threads
    spin-wait on each other (10x slower, measured in test_verbalizer.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_llm(tiny_dir: Path) -> Any:
    """The tiny model of :func:`tiny_dir`, freshly loaded on CPU."""
    import recgym.llm

    return recgym.llm.load(str(tiny_dir), device="cpu", progress=False)


def lora_state(model: Any) -> dict[str, Any]:
    """A copy of a PEFT model's LoRA parameters, by name."""
    return {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}


def assert_base_unchanged(model: Any, base: Mapping[str, Any]) -> None:
    """Every non-LoRA parameter of the PEFT ``model`` equals ``base``'s (the plain model's
    ``named_parameters`` before wrapping)."""
    import torch

    for name, param in model.named_parameters():
        if "lora_" not in name:
            plain = name.replace("base_model.model.", "").replace("base_layer.", "")
            assert torch.equal(param, base[plain]), name


def run_log(out: Path) -> list[dict[str, Any]]:
    """The records of a trainer's ``out/log.jsonl``."""
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


HOSTILE_STRINGS = (
    "</script><script>window.pwned = 'script'</script>",
    '"><img src=x onerror="window.pwned = \'img\'">',
    "'><svg onload=\"window.pwned = 'svg'\"></svg>",
    "javascript:window.pwned = 'url'",
    "</title></svg><script>window.pwned = 'title'</script><!--",
    '</code></details></pre></td></tr></table><iframe srcdoc="<script>parent.pwned=1</script>">',
    "]]><style>body { display: none }</style>&amp;&lt;b&gt; \u2028 `${1}`",
)
"""Strings that would run script, break out of a quoted attribute, a tag or a ``<script>``, or
hide the page, if the leaderboard page put them anywhere unescaped (each sets ``window.pwned``
or hides the page when it escapes)."""


def hostile_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of runner ``rows`` with a hostile string in every string field that reaches a
    report: agent name and config (its ``model`` names the label), env id, split, episodes,
    seeds, device, training device, command, ``k``, reward, data digest and stale reasons (every
    other row is stale). Rows keep their numbers, so the tables and plots are drawn."""
    out = []
    for i, row in enumerate(rows):
        s = HOSTILE_STRINGS[i % len(HOSTILE_STRINGS)]
        t = HOSTILE_STRINGS[(i + 1) % len(HOSTILE_STRINGS)]
        out.append(
            {
                **row,
                "agent": s,
                "agent_config": {"model": t, s: t, "nested": [s, {"k": t}]},
                "env_id": f"{row['env_id']}{t}" if i % 3 == 0 else row["env_id"],
                "split": s,
                "episodes": t,
                "seeds": [s, 1],
                "device": t,
                "budget": 1.5,
                "budget_device": s,
                "command": f"python -m benchmarks run --agent {s!r} --env {t}",
                "k": t,
                "reward": s,
                "data_version": t,
                **({"stale": [s, t]} if i % 2 else {}),
            }
        )
    return out
