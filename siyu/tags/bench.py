"""`siyu bench keywords`: chat keyword matching, 10,000 keywords over N messages (`--messages`, default 10 million).

The rules are made up deterministically: 10,000 distinct keywords (2–4 Chinese characters, some Latin product words
and the behaviour simulator's retail vocabulary) in about 550 rules of every match mode (70 % any, 10 % exact, 10 %
whole message, with 20 keywords each; 10 % all, with 2 or 3), a fifth of them with exclusion words. Messages are
retail chat lines generated deterministically from a seed, chunk by chunk, in the worker processes themselves
(nothing crosses between processes but chunk numbers and counts): a third carry a keyword, some in full-width or
upper-case form, a few are a word said alone.

One worker process per core, the matcher built once before they fork. A chunk is generated, then matched (timed on
its own), then a sample of it is checked against the naive matcher (`siyu.tags.keywords.naive_match`, rule by rule
substring search). Prints messages per minute over the wall clock (generation included) and over the matching
alone, the matches, and the sample check.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from django.db import connections
from rich.console import Console
from rich.table import Table

from siyu.emulator.simulator import KEYWORDS as SIMULATOR_KEYWORDS
from siyu.emulator.simulator import PRODUCTS
from siyu.tags.keywords import ALL, ANY, EXACT, WHOLE, Matcher, RuleSpec, fold, naive_match

SEED = 20_261_203
KEYWORD_COUNT = 10_000
PER_RULE = 20
CHUNK = 50_000
SAMPLE_EVERY = 5_000  # one message in this many is checked against the naive matcher

# Common characters of retail chat, for made-up keywords and filler text.
HANZI = (
    "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小多然"
    "于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动方期它头经长儿"
    "回位分爱老因很给名法间斯知世什两次使身者被高已亲其进此话常与活正感见明问力理尔点文几定本公特做外孩相西果走将"
    "月十实向声车全信重三机工物气每并别真打太新比才便夫再书部水像眼等体却加电主界门利海受听表德少克代员许稜先口由"
    "死安写性马光白或住难望教命花结乐色更拉东神记处让母父应直字场平报友关放至张认接告入笑内英军候民岁往何度山觉路"
    "霜乳液精华膜防晒补水保湿美白抗老祛痘控油敏感肌干皮油皮混合卸妆洁面眼唇彩粉底遮瑕香氛礼盒会员积分优惠券满减折扣"
)
LATIN = ("spf", "vc", "a醇", "b5", "pa+++", "ha", "nmn", "cica", "retinol", "niacinamide", "vip", "618", "双11")
FILLERS = (
    "你好", "在吗", "请问", "这个", "那个", "有没有", "多少钱", "什么时候", "可以", "谢谢", "好的", "嗯嗯", "亲",
    "我想", "帮我看看", "怎么用", "适合", "推荐", "一下", "哈哈", "不", "？", "！", "，", "。", " ", "～",
)  # fmt: skip
ANSWERS = ("好的", "收到", "谢谢", "嗯嗯", "可以", "不用了", "OK", "好滴")


def make_rules(seed: int = SEED) -> list[RuleSpec]:
    """About 550 rules sharing 10,000 distinct keywords (exclusion words besides), the same for a seed everywhere."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not secrets
    words: dict[str, None] = dict.fromkeys((*SIMULATOR_KEYWORDS, *PRODUCTS, *LATIN, *ANSWERS))
    while len(words) < KEYWORD_COUNT:
        words["".join(rng.choices(HANZI, k=rng.choice((2, 2, 3, 3, 3, 4))))] = None
    keywords = list(words)[:KEYWORD_COUNT]
    rng.shuffle(keywords)
    rules: list[RuleSpec] = []
    taken = 0
    while taken < len(keywords):
        draw = rng.random()
        mode = ANY if draw < 0.7 else ALL if draw < 0.8 else EXACT if draw < 0.9 else WHOLE
        # An "all" rule of 20 words would never match: it gets two or three.
        group = keywords[taken : taken + (rng.choice((2, 3)) if mode == ALL else PER_RULE)]
        taken += len(group)
        exclusions: tuple[str, ...] = ()
        if rng.random() < 0.2:
            exclusions = tuple(dict.fromkeys("不" + rng.choice(group) for _ in range(rng.randint(1, 3))))
        number = len(rules) + 1
        rules.append(RuleSpec(id=number, keywords=tuple(group), exclusions=exclusions, mode=mode, tag_ids=(number,)))
    return rules


def _variant(rng: random.Random, word: str) -> str:
    """The word as people type it: mostly as is, sometimes upper case or full-width."""
    draw = rng.random()
    if draw < 0.1:
        return word.upper()
    if draw < 0.15:
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)
    return word


@dataclass(frozen=True)
class Vocabulary:
    """What messages are made of, drawn once per seed: phrases of chat filler (some with a run of random characters)
    and the keywords as typed (some upper case or full-width)."""

    phrases: list[str]
    said: list[str]


def make_vocabulary(keywords: list[str], seed: int = SEED) -> Vocabulary:
    rng = random.Random(seed + 1)  # noqa: S311 - a reproducible workload
    phrases = []
    for _ in range(50_000):
        phrase = rng.choice(FILLERS)
        if rng.random() < 0.25:
            phrase += "".join(rng.choices(HANZI, k=rng.randint(2, 6)))
        phrases.append(phrase)
    return Vocabulary(phrases=phrases, said=[_variant(rng, w) for w in keywords for _ in range(3)])


def make_messages(chunk: int, size: int, vocabulary: Vocabulary, seed: int = SEED) -> list[str]:
    """Chunk `chunk` of the message stream: `size` chat lines, the same for a (seed, chunk) everywhere."""
    rng = random.Random(seed * 1_000_003 + chunk)  # noqa: S311 - a reproducible workload
    phrases, said = vocabulary.phrases, vocabulary.said
    choices, choice, random_ = rng.choices, rng.choice, rng.random
    lengths = (2, 3, 3, 4, 4, 5, 6)
    messages = []
    for _ in range(size):
        draw = random_()
        if draw < 0.03:  # a short answer, or a keyword said alone: what "whole message" rules look for
            messages.append((choice(ANSWERS) if draw < 0.015 else choice(said)) + choice(("", "！", "～", "。")))
            continue
        parts = choices(phrases, k=choice(lengths))
        if draw < 0.35:  # a third mention a keyword, a few two
            parts[-1] += choice(said)
            if draw < 0.08:
                parts[0] += choice(said)
        messages.append("".join(parts))
    return messages


@dataclass
class ChunkResult:
    messages: int
    characters: int
    matches: int  # (message, rule) pairs
    matched_messages: int
    match_seconds: float
    match_cpu_seconds: float
    generate_seconds: float
    sample: list[tuple[str, list[int]]]  # every SAMPLE_EVERY-th message and what the automaton found in it


# Built once in the parent before the workers fork (copy-on-write): every worker process has them without rebuilding.
_RULES: list[RuleSpec] = []
_VOCABULARY: list[Vocabulary] = []
_MATCHER: list[Matcher] = []


def _prepare(seed: int) -> float:
    """Rules, vocabulary and matcher; returns how long building the matcher took."""
    _RULES[:] = make_rules(seed)
    _VOCABULARY[:] = [make_vocabulary([w for rule in _RULES for w in rule.keywords], seed)]
    started = time.perf_counter()
    _MATCHER[:] = [Matcher(_RULES)]
    return time.perf_counter() - started


def run_chunk(args: tuple[int, int, int]) -> ChunkResult:
    chunk, size, seed = args
    started = time.perf_counter()
    messages = make_messages(chunk, size, _VOCABULARY[0], seed)
    generated, cpu = time.perf_counter(), time.process_time()
    match = _MATCHER[0].match
    matches = matched = 0
    for text in messages:
        hits = match(text)
        if hits:
            matches += len(hits)
            matched += 1
    done, cpu = time.perf_counter(), time.process_time() - cpu
    return ChunkResult(
        messages=len(messages),
        characters=sum(map(len, messages)),
        matches=matches,
        matched_messages=matched,
        match_seconds=done - generated,
        match_cpu_seconds=cpu,
        generate_seconds=generated - started,
        sample=[(text, match(text)) for text in messages[::SAMPLE_EVERY]],
    )


def check_sample(sample: list[tuple[str, list[int]]]) -> list[tuple[str, list[int], list[int]]]:
    """The sampled messages where the automaton and the naive matcher disagree."""
    return [(text, fast, slow) for text, fast in sample if (slow := naive_match(_RULES, text)) != fast]


def run(options: dict[str, Any], console: Console) -> None:
    total = int(options.get("messages") or 10_000_000)
    if total < 1:
        raise LookupError("--messages must be at least 1")
    workers = os.cpu_count() or 1
    seed = SEED
    build_seconds = _prepare(seed)
    chunks = [(i, min(CHUNK, total - i * CHUNK), seed) for i in range((total + CHUNK - 1) // CHUNK)]
    console.print(
        f"keywords: {sum(len(r.keywords) for r in _RULES):,} in {len(_RULES)} rules, {_MATCHER[0].patterns:,} "
        f"patterns with exclusions, automaton built in {build_seconds * 1000:.0f} ms; "
        f"{total:,} messages in {len(chunks)} chunks on {workers} worker process(es)"
    )
    connections.close_all()  # nothing database-side is shared with the forked workers
    context = multiprocessing.get_context("fork")
    with context.Pool(processes=workers) as pool:
        started = time.perf_counter()
        results = list(pool.imap_unordered(run_chunk, chunks))
        elapsed = time.perf_counter() - started
        # The check is not timed: the naive matcher reads every rule's every word for each message.
        samples = [r.sample[i : i + 50] for r in results for i in range(0, len(r.sample), 50)]
        mismatches = [m for found in pool.imap_unordered(check_sample, samples) for m in found]

    messages = sum(r.messages for r in results)
    match_seconds = sum(r.match_seconds for r in results)
    match_cpu = sum(r.match_cpu_seconds for r in results)
    generate_seconds = sum(r.generate_seconds for r in results)
    sampled = sum(len(r.sample) for r in results)
    table = Table(title=f"keyword matching: {KEYWORD_COUNT:,} keywords, {messages:,} messages, {workers} processes")
    table.add_column("figure")
    table.add_column("value", justify="right")
    per_minute = messages * 60 / 1e6
    table.add_row("elapsed, wall clock (generating the messages included)", f"{elapsed:.1f} s")
    table.add_row("messages per minute, wall clock", f"{per_minute / elapsed:.2f} M")
    table.add_row(
        f"messages per minute, matching alone ({workers} processes)", f"{per_minute * workers / match_seconds:.2f} M"
    )
    table.add_row("messages per minute, matching alone, per core (CPU time)", f"{per_minute / match_cpu:.2f} M")
    table.add_row("generating messages (all processes)", f"{generate_seconds:.1f} s")
    table.add_row("average message length", f"{sum(r.characters for r in results) / messages:.1f} characters")
    table.add_row("messages matching a rule", f"{sum(r.matched_messages for r in results):,}")
    table.add_row("matches (message, rule)", f"{sum(r.matches for r in results):,}")
    table.add_row("sample checked against the naive matcher", f"{sampled:,} messages, {len(mismatches)} mismatches")
    console.print(table)
    for text, fast, slow in mismatches[:5]:
        console.print(f"[red]mismatch[/red] {text!r} ({fold(text)!r}): automaton {fast}, naive {slow}")
