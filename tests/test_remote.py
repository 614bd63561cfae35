"""recgym.llm.remote against a real OpenAI-compatible server on loopback (transformers serve)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiny_llm

pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import recgym.llm
from recgym.llm.remote import RemoteLLM, RemoteLLMError, parse_spec

PROMPTS = ["Recommend a movie for a rainy day", "hi", "List three colours for a kitchen wall"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(model: Path, *extra: str) -> Iterator[str]:
    """Start `transformers serve` on a free loopback port; yield its API root; stop it."""
    port = _free_port()
    cli = Path(sys.executable).with_name("transformers")
    log = open(model.parent / f"serve-{port}.log", "w+")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [
            *(str(cli), "serve", str(model), "--host", "127.0.0.1", "--port", str(port)),
            *("--device", "cpu", "--dtype", "float32", "--log-level", "warning", *extra),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"transformers serve did not start:\n{log.read()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def served(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, with sampling on in its generation config: `transformers serve` samples
    only when the model's config says so (a request's temperature 0 still turns it off)."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(tiny_dir, folder)
    config_file = folder / "generation_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "do_sample": True, "top_k": 0}))
    return folder


@pytest.fixture(scope="module")
def server(served: Path) -> Iterator[str]:
    yield from _serve(served)


def _texts(gens: list[Any]) -> list[str]:
    return [g.text for g in gens]


def test_spelling_and_its_errors() -> None:
    assert parse_spec("openai:http://h:1/v1/#m") == ("http://h:1/v1", "m")
    assert parse_spec("openai:https://api.example.org/v1") == ("https://api.example.org/v1", None)
    with pytest.raises(ValueError, match="http"):
        parse_spec("openai:localhost:8000#m")
    with pytest.raises(ValueError, match="no credentials in the URL"):
        parse_spec("openai:http://user:secret@h/v1#m")
    with pytest.raises(ValueError, match="no device, dtype or backend"):
        recgym.llm.load("openai:http://127.0.0.1:9/v1#m", device="cpu")


def test_a_server_that_is_not_there_is_named() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(RemoteLLMError, match=f"{url}/models"):
        recgym.llm.load(f"openai:{url}", retries=0, timeout=5)
    llm = recgym.llm.load(f"openai:{url}#m", retries=0, timeout=5)  # named: no listing
    with pytest.raises(RemoteLLMError, match=f"every request to {url} failed"):
        llm.generate(PROMPTS)


def test_greedy_answers_match_the_in_process_model(
    server: str, served: Path, tiny_dir: Path
) -> None:
    remote = recgym.llm.load(f"openai:{server}")
    assert isinstance(remote, RemoteLLM) and remote.model_id == str(served)
    local = tiny_llm(tiny_dir)
    for chat in (True, False):
        got = remote.generate(PROMPTS, max_new_tokens=10, chat=chat)
        assert _texts(got) == _texts(local.generate(PROMPTS, max_new_tokens=10, chat=chat))
        assert all(g.finish_reason == "length" for g in got)  # a random model never stops
    # A prefilled reply goes to /completions, rendered with the model's own template here.
    prefilled = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure"}]]
    templated = RemoteLLM(server, chat_template=local.chat_prompt)
    assert _texts(templated.generate(prefilled, max_new_tokens=8)) == _texts(
        local.generate(prefilled, max_new_tokens=8)
    )


def test_stop_strings_and_seeds(server: str) -> None:
    remote = recgym.llm.load(f"openai:{server}")
    free = remote.generate(PROMPTS[:1], max_new_tokens=12)[0]
    stop = free.text[4:7]
    cut = remote.generate(PROMPTS[:1], max_new_tokens=12, stop=[stop])[0]
    assert cut.finish_reason == "stop" and free.text.startswith(cut.text) and stop not in cut.text
    kwargs: dict[str, Any] = {"max_new_tokens": 12, "temperature": 1.0}
    a = _texts(remote.generate(PROMPTS, seed=[1, 2, 3], **kwargs))
    assert a == _texts(remote.generate(PROMPTS, seed=[1, 2, 3], **kwargs))
    # Each request carries its own seed: a row's sample does not depend on the others.
    assert a[1] == _texts(remote.generate(PROMPTS, seed=[7, 2, 9], **kwargs))[1]
    assert a != _texts(remote.generate(PROMPTS, seed=[4, 5, 6], **kwargs))


def test_a_failed_request_is_an_empty_answer_and_the_key_stays_secret(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECGYM_TEST_KEY", "sk-do-not-log-me")
    remote = RemoteLLM(server, "no-such-model", api_key_env="RECGYM_TEST_KEY", retries=0)
    with pytest.raises(RemoteLLMError, match="every request") as failed:
        remote.generate(PROMPTS)
    assert "sk-do-not-log-me" not in str(failed.value) + repr(remote) + remote.name
    # One bad request among good ones: an empty (penalised) answer and a warning naming it.
    good = RemoteLLM(server, retries=0, api_key_env="RECGYM_TEST_KEY")
    real_ask = good._ask
    refused = {"generation_config": '{"trust_remote_code": true}'}  # the server answers 422

    def ask(prompt: Any, chat: bool, sampling: dict[str, Any]) -> Any:
        if prompt == "hi":
            sampling = {**sampling, "extra_body": refused}
        return real_ask(prompt, chat, sampling)

    monkeypatch.setattr(good, "_ask", ask)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = good.generate(PROMPTS, max_new_tokens=6)
    assert got[1].text == "" and got[0].text and got[2].text
    message = " ".join(str(w.message) for w in caught)
    assert "1 of 3 requests" in message and "HTTP 422" in message and server in message
    assert "sk-do-not-log-me" not in message and good.failures == 1


@pytest.mark.slow
def test_zero_shot_recsearch_through_a_server_matches_the_in_process_row() -> None:
    """The embedded SmolLM2 served by `transformers serve`, greedy: the RecSearch-v0 row of the
    zero-shot agent through the server equals the in-process one. The answer prefix makes the
    queries real (without it nearly every answer fails the format and every reward is equal);
    the prefilled reply goes to /completions, rendered as ChatML by the client."""
    import gymnasium as gym

    from agents.llm.zero_shot import ZeroShotLLMAgent
    from benchmarks.runner import evaluate
    from recgym.evaluation import EvalSpec

    folder = recgym.llm.embedded_model_dir("smollm2-135m", progress=False)
    kwargs: dict[str, Any] = {"temperature": 0.0, "max_new_tokens": 48, "batch_size": 8}
    kwargs["response_prefix"] = '<answer>{"query": "'
    spec = EvalSpec("RecSearch-v0", "zero-shot", split="test", episodes=8, batch_size=8)
    env = gym.make("RecSearch-v0", split="test")
    observations = [str(env.reset(options={"index": i})[0]) for i in range(8)]
    in_process = ZeroShotLLMAgent("smollm2-135m", **kwargs)
    actions = in_process.act_batch(observations)
    assert len(set(actions)) == len(actions)  # real, different queries
    local = evaluate(spec, in_process)
    for url in _serve(folder):
        agent = ZeroShotLLMAgent(recgym.llm.load(f"openai:{url}"), **kwargs)
        assert agent.config()["backend"] == "openai-server"
        assert agent.act_batch(observations) == actions
        remote = evaluate(spec, agent)
    for metric in ("reward", "ndcg@10", "format_ok"):
        assert remote["metrics"][metric]["mean"] == pytest.approx(local["metrics"][metric]["mean"])
