"""`siyu bench keywords` on a few messages: the workload it builds, the figures it prints, its sample check."""

from __future__ import annotations

import io
from collections import Counter

from rich.console import Console

from siyu.tags import bench
from siyu.tags.keywords import ALL, ANY, EXACT, WHOLE, naive_match


def test_the_workload_is_10000_keywords_in_every_mode_the_same_every_time() -> None:
    rules = bench.make_rules()
    keywords = [w for rule in rules for w in rule.keywords]
    assert len(keywords) == len(set(keywords)) == 10_000
    assert set(Counter(rule.mode for rule in rules)) == {ANY, ALL, EXACT, WHOLE}
    assert sum(1 for rule in rules if rule.exclusions) > 50
    assert bench.make_rules() == rules
    vocabulary = bench.make_vocabulary(keywords)
    assert bench.make_messages(3, 500, vocabulary) == bench.make_messages(3, 500, vocabulary)
    assert bench.make_messages(3, 500, vocabulary) != bench.make_messages(4, 500, vocabulary)


def test_the_bench_prints_its_figures_and_a_clean_sample_check() -> None:
    out = io.StringIO()
    bench.run({"messages": 12_000}, Console(file=out, width=200))
    printed = out.getvalue()
    assert "10,000 keywords, 12,000 messages" in printed
    assert "messages per minute, wall clock" in printed
    assert "3 messages, 0 mismatches" in printed  # chunk 0's messages 0, 5000 and 10000


def test_the_sample_check_reports_a_disagreement() -> None:
    bench._prepare(bench.SEED)
    word = next(r.keywords[0] for r in bench._RULES if r.mode == ANY and not r.exclusions)
    right = naive_match(bench._RULES, word)
    assert right
    assert bench.check_sample([(word, right)]) == []
    assert bench.check_sample([(word, [])]) == [(word, [], right)]
