"""LLM agents: zero-shot policies (and, later, trainers)."""

from __future__ import annotations

from agents.llm.zero_shot import ZeroShotLLMAgent

__all__ = ["ZeroShotLLMAgent"]
