"""A third-party agent for ``RecSeq-v0``, in a file of its own: no LLM, no training.

:class:`GenreAgent` reads the user's history from the prompt (one movie per line,
``"3. Title (year) | Genre, Genre"``) and asks the BM25 retriever for the user's most frequent
genres, words from the latest titles and the latest release years. The defaults were chosen on
the validation split (943 episodes). Evaluate it with the benchmark runner::

    python -m benchmarks run --env RecSeq-v0 --agent docs/examples/custom_agent.py:GenreAgent \\
        --split test --episodes 943 --out /tmp/genre.jsonl
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from recgym.envs.text import fenced_block
from recgym.rewards import format_answer

__all__ = ["GenreAgent", "parse_history"]

_NUMBER = re.compile(r"^\s*\d+\.\s*")
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
_ARTICLE = re.compile(r",\s*(?:the|a|an|les|la|le|il|das|der|die|el)$", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "with",
        "by",
        "is",
        "it",
        "its",
        "my",
        "his",
        "her",
        "your",
        "our",
        "their",
    )
)


def parse_history(observation: str) -> list[tuple[str, str, list[str]]]:
    """The movies of a ``RecSeq-v0`` observation, oldest first: ``(title, year, genres)``.

    ``year`` is ``""`` and ``genres`` empty when the catalog has none for a movie.
    """
    movies = []
    for line in fenced_block(observation).splitlines():
        line = _NUMBER.sub("", line).strip()
        if not line:
            continue
        title, _, genres = line.rpartition(" | ") if " | " in line else (line, "", "")
        year = _YEAR.search(title)
        title = _YEAR.sub("", title)
        names = [g.strip() for g in genres.split(",") if g.strip()]
        movies.append((title, year.group(1) if year else "", names))
    return movies


def _last(items: list[Any], n: int) -> list[Any]:
    """The last ``n`` items (all of them if there are fewer; none for ``n == 0``)."""
    return items[-n:] if n > 0 else []


class GenreAgent:
    """The user's top genres and recent title words as the query.

    Args:
        n_genres: how many of the most frequent genres go into the query (ties: the genre
            seen most recently wins).
        recent_titles: how many of the latest titles give words to the query.
        recent_years: how many of the latest movies add their release year (the catalog's
            documents hold the year, and users tend to watch movies of the same years).
        genre_weight: times each chosen genre is repeated (the env's BM25 counts repeated
            query terms, so this weighs genres against title words).
    """

    def __init__(
        self,
        n_genres: int = 5,
        recent_titles: int = 2,
        recent_years: int = 3,
        genre_weight: int = 1,
    ) -> None:
        if min(n_genres, recent_titles, recent_years) < 0 or genre_weight < 1:
            raise ValueError(
                "need n_genres, recent_titles, recent_years >= 0 and genre_weight >= 1; got "
                f"{n_genres}, {recent_titles}, {recent_years}, {genre_weight}"
            )
        self.n_genres = n_genres
        self.recent_titles = recent_titles
        self.recent_years = recent_years
        self.genre_weight = genre_weight

    def query(self, observation: str) -> str:
        """The search query for one observation."""
        movies = parse_history(observation)
        counts: Counter[str] = Counter()
        last_seen: dict[str, int] = {}
        for position, (_, _, genres) in enumerate(movies):
            counts.update(genres)
            last_seen.update(dict.fromkeys(genres, position))
        ranked = sorted(counts, key=lambda g: (-counts[g], -last_seen[g]))
        genres = [g for g in ranked[: self.n_genres] for _ in range(self.genre_weight)]
        words = [
            w
            for title, _, _ in _last(movies, self.recent_titles)
            for w in _WORD.findall(_ARTICLE.sub("", title))
            if w.lower() not in _STOPWORDS and len(w) > 1
        ]
        years = [year for _, year, _ in _last(movies, self.recent_years) if year]
        return " ".join([*genres, *words, *years])

    def act(self, observation: str) -> str:
        """A completion in the env's format: ``<answer>{"query": "..."}</answer>``."""
        return format_answer(self.query(observation))

    def act_batch(self, observations: Sequence[str]) -> list[str]:
        """One completion per observation (the runner calls this once per batch)."""
        return [self.act(o) for o in observations]

    def config(self) -> dict[str, Any]:
        """The settings recorded in the leaderboard row."""
        return {
            "n_genres": self.n_genres,
            "recent_titles": self.recent_titles,
            "recent_years": self.recent_years,
            "genre_weight": self.genre_weight,
        }
