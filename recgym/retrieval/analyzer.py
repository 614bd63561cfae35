"""An English analyzer that reproduces Lucene's, as pyserini/Anserini configure it.

Anserini's ``DefaultEnglishAnalyzer`` chains StandardTokenizer → EnglishPossessiveFilter →
LowerCaseFilter → StopFilter (Lucene's 33 English stop words) → PorterStemFilter. This module
does the same in pure Python:

* **Tokenizing** follows the word rules of Unicode UAX #29 that matter for English text: runs of
  letters, digits and underscores are words; ``'``, ``’``, ``.`` and ``:`` join letters
  (``don't``, ``u.s.a``, ``example.com``); ``,``, ``.``, ``;`` and apostrophes join digits
  (``1,000``, ``3.5``); every CJK ideograph and Hiragana character is a token of its own;
  tokens longer than 255 characters are cut into 255-character pieces (Lucene's default
  ``maxTokenLength``).
* **Possessives**: a trailing ``'s`` (also ``’s``, ``＇s``) is removed.
* **Lower-casing**, then the **stop words** of :data:`ENGLISH_STOP_WORDS`; Boolean operators
  such as ``AND``/``OR``/``NOT`` are ordinary stop words, as in Anserini's bag-of-words queries.
* **Porter stemming** with PyStemmer's ``"porter"`` (Snowball's original Porter algorithm), plus
  what Lucene's ``PorterStemmer`` does differently: words of one or two characters are left
  alone, and the two "departures" of Porter's reference implementation are applied
  (``-logi`` → ``-log``, ``-bli`` → ``-ble``; so "technology" → "technolog", "possibly" →
  "possibl").

Known differences from Lucene, all rare in English product text: emoji (Lucene emits them as
tokens; here they are dropped), combining marks of Indic and other scripts (Lucene keeps them
inside a word; here they split it), Katakana/Hebrew/Southeast-Asian special cases, and
``str.lower`` versus Java's per-code-point ``toLowerCase`` (e.g. "İ", final sigma).

Scores, not the analyzer, can also differ slightly from pyserini's: Lucene stores each
document's length in one lossy byte (``SmallFloat.intToByte4``) and counts only documents that
have the field in ``N``, while :mod:`recgym.retrieval.bm25` uses exact lengths.

The ``max_tokens`` cap stops analysis after that many surviving tokens and never scans more than
``64 * max_tokens`` characters, so a megabyte of text produced by a policy cannot stall scoring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import Stemmer

from recgym.error import DataFormatError

__all__ = ["ENGLISH_STOP_WORDS", "EnglishAnalyzer"]

ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
"""Lucene's ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`` (33 words), the set Anserini uses."""

MAX_TOKEN_LENGTH = 255
"""Lucene StandardTokenizer's default ``maxTokenLength``: longer tokens are split."""

CHARS_PER_TOKEN_BOUND = 64
"""With a ``max_tokens`` cap, at most this many characters per allowed token are scanned."""

_IDEO = "\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD = rf"[^\W{_IDEO}]"  # letters, digits, underscore; not ideographs or Hiragana
_LETTER = rf"[^\W\d_{_IDEO}]"
# UAX #29 rules WB6/7 (MidLetter, MidNumLet, Single_Quote between letters) and WB11/12 (MidNum,
# MidNumLet, Single_Quote between digits), restricted to the marks English text uses.
_MID_LETTER = rf"(?<={_LETTER})[.:'’\uff07\u00b7](?={_LETTER})"
_MID_NUM = r"(?<=\d)[.,;'’\uff07](?=\d)"
_TOKEN_RE = re.compile(rf"[{_IDEO}]|{_WORD}+(?:(?:{_MID_LETTER}|{_MID_NUM}){_WORD}+)*")
_POSSESSIVES = ("'s", "’s", "＇s")
_STEM_CACHE_LIMIT = 1 << 18


def _is_consonant(word: str, i: int) -> bool:
    char = word[i]
    if char in "aeiou":
        return False
    if char == "y":
        return i == 0 or not _is_consonant(word, i - 1)
    return True


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``stem``."""
    m, prev_vowel = 0, False
    for i in range(len(stem)):
        consonant = _is_consonant(stem, i)
        if consonant and prev_vowel:
            m += 1
        prev_vowel = not consonant
    return m


def _lucene_porter_fixups(stem: str) -> str:
    """Turn a Snowball ``porter`` stem into the one Lucene's ``PorterStemmer`` produces.

    Lucene follows Porter's reference C code, which maps ``-logi`` → ``-log`` and ``-bli`` →
    ``-ble`` in step 2 (the published algorithm, and Snowball, map only ``-abli``).
    """
    if stem.endswith("logi") and _measure(stem[:-4]) > 0:
        return stem[:-1]
    if stem.endswith("bli") and not stem.endswith("abli") and _measure(stem[:-3]) > 0:
        base = stem[:-3]
        # "-ible" is removed by step 4 when m > 1; otherwise step 5 drops the final "e".
        if base.endswith("i") and _measure(base[:-1]) > 1:
            return base[:-1]
        return base + "bl"
    return stem


class EnglishAnalyzer:
    """Text → list of index terms, compatible with Anserini's default English analyzer.

    Args:
        max_tokens: default cap on surviving tokens per text (``None``: no cap).
        stop_words: words to drop after lower-casing.
        stem: apply Porter stemming.

    Example:
        >>> EnglishAnalyzer()("The dresses AND running shoes")
        ['dress', 'run', 'shoe']
    """

    def __init__(
        self,
        *,
        max_tokens: int | None = None,
        stop_words: Iterable[str] = ENGLISH_STOP_WORDS,
        stem: bool = True,
    ) -> None:
        if max_tokens is not None and max_tokens < 1:
            raise DataFormatError(f"max_tokens must be >= 1 or None; got {max_tokens}")
        self.max_tokens = max_tokens
        self.stop_words = frozenset(stop_words)
        self.stem = stem
        self._stemmer = Stemmer.Stemmer("porter")
        self._stemmer.maxCacheSize = 0  # our own cache below already holds every stem
        self._stems: dict[str, str] = {}

    def __call__(self, text: str, max_tokens: int | None = None) -> list[str]:
        """Analyze one text (see :meth:`analyze`)."""
        return self.analyze(text, max_tokens)

    def words(self, text: str, max_tokens: int | None = None) -> list[str]:
        """Tokenize, lower-case, strip possessives and drop stop words; no stemming.

        Args:
            text: the text.
            max_tokens: cap on returned words; defaults to the analyzer's ``max_tokens``.
        """
        cap = self.max_tokens if max_tokens is None else max_tokens
        if cap is not None and cap < 1:
            raise DataFormatError(f"max_tokens must be >= 1 or None; got {cap}")
        end = len(text) if cap is None else min(len(text), CHARS_PER_TOKEN_BOUND * cap)
        stop = self.stop_words
        out: list[str] = []
        for match in _TOKEN_RE.finditer(text, 0, end):
            token = match.group()
            pieces = (
                [token]
                if len(token) <= MAX_TOKEN_LENGTH
                else [
                    token[i : i + MAX_TOKEN_LENGTH] for i in range(0, len(token), MAX_TOKEN_LENGTH)
                ]
            )
            for piece in pieces:
                word = piece.lower()
                if word.endswith(_POSSESSIVES):
                    word = word[:-2]
                if not word or word in stop or word.strip("_") == "":
                    continue
                out.append(word)
                if cap is not None and len(out) >= cap:
                    return out
        return out

    def stem_words(self, words: list[str]) -> list[str]:
        """Porter stems of ``words``, computed once per distinct word and cached."""
        if not self.stem:
            return list(words)
        stems = self._stems
        new = list({w for w in words if w not in stems})
        if new:
            if len(stems) + len(new) > _STEM_CACHE_LIMIT:
                stems.clear()  # a bounded cache; the vocabulary of a catalog fits easily
            long_words = [w for w in new if len(w) > 2]
            for word, stem in zip(long_words, self._stemmer.stemWords(long_words), strict=True):
                stems[word] = _lucene_porter_fixups(stem)
            for word in new:
                if len(word) <= 2:  # Lucene's PorterStemmer leaves 1-2 letter words alone
                    stems[word] = word
        return [stems[w] for w in words]

    def analyze(self, text: str, max_tokens: int | None = None) -> list[str]:
        """The index terms of ``text``, in order, repeats kept.

        Args:
            text: the text.
            max_tokens: cap on returned terms; defaults to the analyzer's ``max_tokens``.
        """
        return self.stem_words(self.words(text, max_tokens))

    def analyze_batch(self, texts: Iterable[str], max_tokens: int | None = None) -> list[list[str]]:
        """:meth:`analyze` over many texts, stemming their distinct words in one batch."""
        word_lists = [self.words(t, max_tokens) for t in texts]
        flat = [w for words in word_lists for w in words]
        stems = iter(self.stem_words(flat))
        return [[next(stems) for _ in words] for words in word_lists]
