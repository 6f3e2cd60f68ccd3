"""Chat keyword matching (关键词打标): every enabled rule of a brand compiled into one Aho-Corasick automaton.

A message is matched once, whatever the number of rules: its text is folded (`fold`: full-width forms to their
half-width ones, Ａ１！ → A1!, half-width katakana to full-width, ｶ → カ, then lower case, so Latin letters match in
any case and width), the automaton reports every keyword and exclusion word in it (overlapping hits included: 敏感 and
敏感肌 both), each hit is mapped to the rules that list the word, and each rule's mode decides:

  any    the message contains at least one keyword
  all    the message contains every keyword
  exact  a keyword stands as a word of its own: not preceded or followed by a letter, digit or Chinese character
         ("VC" in "要VC精华" is not one, in "VC, 有吗" it is; spaces, punctuation and the message's ends delimit)
  whole  the whole message is a keyword, once surrounding spaces and punctuation are dropped ("敏感肌！" is 敏感肌)

An exclusion word anywhere in the message vetoes its rule, whatever the mode.

Speed (`siyu bench keywords`): the automaton is ahocorasick-rs (Rust); on Chinese text it runs about ten times as fast
as pyahocorasick, whose root node scans thousands of first characters. Folding a whole message costs as much as
matching it (Chinese chat is full of full-width ，！？), so a message is only folded in full when it holds the wide
form of a character some keyword has; otherwise lower-casing it gives the same matches (the wide characters it keeps
are in no keyword, and are letters, digits or punctuation alike in either width). Nothing here touches the database:
the bench's worker processes use it as is.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ahocorasick_rs import AhoCorasick

ANY, ALL, EXACT, WHOLE = "any", "all", "exact", "whole"
MODES = (ANY, ALL, EXACT, WHOLE)
DIRECT, GROUP, BOTH = "direct", "group", "both"
SCOPES = (DIRECT, GROUP, BOTH)

MAX_KEYWORD = 50  # characters of one keyword or exclusion word
MAX_WORDS = 1000  # keywords (and, separately, exclusion words) of one rule

# Full-width ASCII (U+FF01–FF5E) and the ideographic space to ASCII; half-width katakana and symbols to full-width.
_WIDTH: dict[int, int] = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
for _code in range(0xFF61, 0xFFEF):
    _wide = unicodedata.normalize("NFKC", chr(_code))
    if len(_wide) == 1 and _wide != chr(_code):
        _WIDTH[_code] = ord(_wide)
_NARROWS: dict[str, str] = {}  # a folded character → the characters that fold to it (its wide forms, upper cases)
for _from, _to in _WIDTH.items():
    _NARROWS[chr(_to).lower()] = _NARROWS.get(chr(_to).lower(), "") + chr(_from)

# What `whole` drops around a message: whitespace and punctuation, ASCII, full-width and CJK.
_PUNCTUATION = string.punctuation + "。、「」『』【】《》〈〉“”‘’—…·～〜♪❤️"
_EDGES = string.whitespace + _PUNCTUATION
_EDGES += "".join(chr(w) for w, n in _WIDTH.items() if chr(n) in _EDGES)  # their other widths: ！， ｡ and the rest
# Wide characters `Matcher.match` must fold even when no keyword has them: folding makes them a letter or not.
_UNSAFE = "".join(chr(w) for w, n in _WIDTH.items() if chr(w).lower().isalnum() != chr(n).lower().isalnum())
_EXCLUDE = -1


def fold(text: str) -> str:
    """The form keywords and messages are compared in: full-width Ａ１！ → A1!, half-width ｶ → カ, then lower case."""
    return text.translate(_WIDTH).lower()


@dataclass(frozen=True)
class RuleSpec:
    """One keyword rule as the matcher and the tagging pipeline need it (KeywordRule rows, or a bench's rules)."""

    id: int
    keywords: tuple[str, ...]
    exclusions: tuple[str, ...] = ()
    mode: str = ANY
    scope: str = BOTH
    customer_only: bool = True
    tag_ids: tuple[int, ...] = ()

    def applies_to(self, *, group: bool) -> bool:
        return self.scope == BOTH or self.scope == (GROUP if group else DIRECT)


def _folded_words(words: Iterable[str]) -> list[str]:
    """Folded, stripped, without empties and duplicates (in order)."""
    return list(dict.fromkeys(w for w in (fold(word).strip() for word in words) if w))


def _bare(text: str) -> str:
    """A message as `whole` compares it: without the spaces and punctuation around it (unless that is all it is)."""
    return text.strip(_EDGES) or text.strip()


def _is_boundary(text: str, start: int, end: int) -> bool:
    return (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())


class Matcher:
    """All rules of a brand compiled once; `match(text)` gives the indexes (into `rules`) of the rules it matches."""

    def __init__(self, rules: Sequence[RuleSpec]) -> None:
        self.rules = tuple(rules)
        patterns: dict[str, int] = {}
        # Per pattern: the `any` rules a hit matches outright, and the other (rule, keyword position or _EXCLUDE).
        anys: list[list[int]] = []
        others: list[list[tuple[int, int]]] = []
        self._whole: dict[str, list[int]] = {}
        self._modes: list[str] = []
        self._needed: list[int] = []  # how many keywords an `all` rule needs
        characters: set[str] = set()

        def pattern(word: str) -> int:
            index = patterns.setdefault(word, len(patterns))
            if index == len(anys):
                anys.append([])
                others.append([])
            return index

        for r, rule in enumerate(self.rules):
            if rule.mode not in MODES:
                raise ValueError(f"unknown match mode {rule.mode!r}")
            keywords = _folded_words(rule.keywords)
            exclusions = _folded_words(rule.exclusions)
            characters.update(*keywords, *exclusions)
            self._modes.append(rule.mode)
            self._needed.append(len(keywords))
            for position, word in enumerate(keywords):
                if rule.mode == WHOLE:
                    self._whole.setdefault(word.strip(_EDGES) or word, []).append(r)
                elif rule.mode == ANY:
                    anys[pattern(word)].append(r)
                else:
                    others[pattern(word)].append((r, position))
            for word in exclusions:
                others[pattern(word)].append((r, _EXCLUDE))
        self._anys = [tuple(dict.fromkeys(a)) for a in anys]
        self._others = [tuple(o) for o in others]
        self._automaton = AhoCorasick(list(patterns)) if patterns else None
        self.patterns = len(patterns)
        # The characters whose presence makes a full fold necessary: the other forms of the keywords' characters.
        wide = "".join(sorted({w for c in characters for w in _NARROWS.get(c, "")} | set(_UNSAFE)))
        self._wide = re.compile(f"[{re.escape(wide)}]")

    def match(self, text: str) -> list[int]:
        """The rules `text` matches, by index into `rules`, in rule order."""
        return self.match_folded(fold(text) if self._wide.search(text) else text.lower())

    def match_folded(self, text: str) -> list[int]:
        """As `match`, for a text already through `fold`."""
        hits = self._automaton.find_matches_as_indexes(text, overlapping=True) if self._automaton else None
        whole = self._whole.get(_bare(text)) if self._whole else None
        if not hits and not whole:
            return []
        matched: set[int] = set(whole or ())
        vetoed: set[int] = set()
        found: dict[int, set[int]] = {}
        anys, others, modes = self._anys, self._others, self._modes
        for p, start, end in hits or ():
            matched.update(anys[p])
            for r, role in others[p]:
                if role == _EXCLUDE:
                    vetoed.add(r)
                elif modes[r] == ALL:
                    found.setdefault(r, set()).add(role)
                elif _is_boundary(text, start, end):  # exact
                    matched.add(r)
        for r, positions in found.items():
            if len(positions) == self._needed[r]:
                matched.add(r)
        return sorted(matched - vetoed) if vetoed else sorted(matched)


def naive_match(rules: Sequence[RuleSpec], text: str) -> list[int]:
    """The same decisions as `Matcher.match` by plain substring search, rule by rule: the reference the tests and the
    bench check the automaton against (quadratic: for samples only)."""
    folded = fold(text)
    out = []
    for r, rule in enumerate(rules):
        keywords = _folded_tuple(tuple(rule.keywords))
        if any(word in folded for word in _folded_tuple(tuple(rule.exclusions))):
            continue
        if rule.mode == ANY:
            hit = any(word in folded for word in keywords)
        elif rule.mode == ALL:
            hit = bool(keywords) and all(word in folded for word in keywords)
        elif rule.mode == EXACT:
            hit = any(_occurs_as_word(folded, word) for word in keywords)
        else:
            hit = any(_bare(folded) == (word.strip(_EDGES) or word) for word in keywords)
        if hit:
            out.append(r)
    return out


@functools.lru_cache(maxsize=4096)
def _folded_tuple(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_folded_words(words))


def _occurs_as_word(text: str, word: str) -> bool:
    start = text.find(word)
    while start != -1:
        if _is_boundary(text, start, start + len(word)):
            return True
        start = text.find(word, start + 1)
    return False
