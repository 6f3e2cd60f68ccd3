"""The keyword matcher: match modes, exclusions, case and width folding, overlapping keywords, and agreement with
a plain substring reading on generated rules and messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.tags.keywords import ALL, ANY, EXACT, WHOLE, Matcher, RuleSpec, fold, naive_match


def matched(rules: list[RuleSpec], text: str) -> set[int]:
    """The ids of the rules `text` matches (and the naive reading agrees)."""
    found = Matcher(rules).match(text)
    assert found == naive_match(rules, text), text
    return {rules[i].id for i in found}


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("ＳＰＦ５０＋", "spf50+"),  # full-width Latin letters, digits and signs
        ("VC精华", "vc精华"),
        ("ｶﾀｶﾅ", "カタカナ"),  # half-width katakana widen
        ("敏感肌　面霜", "敏感肌 面霜"),  # the ideographic space
        ("Ａ醇！", "a醇!"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_any_matches_a_message_with_one_keyword_and_finds_overlapping_ones() -> None:
    rules = [RuleSpec(1, ("敏感肌",)), RuleSpec(2, ("敏感",)), RuleSpec(3, ("肌",)), RuleSpec(4, ("干皮", "油皮"))]
    assert matched(rules, "想了解一下敏感肌的面霜") == {1, 2, 3}
    assert matched(rules, "我是油皮") == {4}
    assert matched(rules, "面霜多少钱") == set()
    assert matched(rules, "") == set()


def test_latin_letters_match_in_any_case_and_width() -> None:
    rules = [RuleSpec(1, ("SPF",)), RuleSpec(2, ("ｖｃ精华",))]
    for text in ("spf50吗", "SPF50吗", "ＳＰＦ５０吗", "Spf"):
        assert matched(rules, text) == {1}, text
    assert matched(rules, "VC精华有货吗") == {2}
    assert matched(rules, "Ｖｃ精华") == {2}


def test_all_needs_every_keyword() -> None:
    rules = [RuleSpec(1, ("防晒", "spf"), mode=ALL), RuleSpec(2, ("会员", "积分", "兑换"), mode=ALL)]
    assert matched(rules, "防晒霜是SPF50的吗") == {1}
    assert matched(rules, "防晒霜多少钱") == set()
    assert matched(rules, "会员积分怎么兑换") == {2}
    assert matched(rules, "会员积分兑换积分会员") == {2}  # repeats count once
    assert matched(rules, "会员积分") == set()


def test_exact_wants_the_keyword_as_a_word_of_its_own() -> None:
    rules = [RuleSpec(1, ("vc",), mode=EXACT), RuleSpec(2, ("面霜",), mode=EXACT)]
    assert matched(rules, "VC") == {1}
    assert matched(rules, "要 vc 还是 a醇") == {1}
    assert matched(rules, "VC，有吗") == {1}
    assert matched(rules, "vc精华") == set()  # followed by a Chinese character
    assert matched(rules, "vitamin vcx") == set()
    assert matched(rules, "想了解面霜") == set()
    assert matched(rules, "面霜！面霜？") == {2}
    # The second occurrence counts when the first does not stand alone.
    assert matched(rules, "vcx, vc") == {1}


def test_whole_wants_the_whole_message() -> None:
    rules = [RuleSpec(1, ("好的", "收到"), mode=WHOLE), RuleSpec(2, ("?",), mode=WHOLE)]
    assert matched(rules, "好的") == {1}
    assert matched(rules, "  好的！！") == {1}
    assert matched(rules, "收到。") == {1}
    assert matched(rules, "「收到」") == {1}
    assert matched(rules, "好的，谢谢") == set()
    assert matched(rules, "？") == {2}  # a keyword that is all punctuation is the message itself


def test_an_exclusion_vetoes_its_rule_only_and_in_every_mode() -> None:
    rules = [
        RuleSpec(1, ("敏感肌",), exclusions=("不是敏感肌", "没有")),
        RuleSpec(2, ("敏感肌",)),
        RuleSpec(3, ("敏感肌", "面霜"), exclusions=("不是",), mode=ALL),
        RuleSpec(4, ("敏感肌",), exclusions=("不",), mode=WHOLE),
        RuleSpec(5, ("敏感肌",), exclusions=("没有",), mode=EXACT),
    ]
    assert matched(rules, "敏感肌") == {1, 2, 4, 5}
    assert matched(rules, "我不是敏感肌，面霜推荐下") == {2}
    assert matched(rules, "敏感肌 没有过敏") == {2}
    assert matched(rules, "敏感肌的面霜") == {1, 2, 3}


def test_words_are_folded_and_deduplicated_when_compiled() -> None:
    matcher = Matcher([RuleSpec(1, ("SPF", "ｓｐｆ", " spf ", "")), RuleSpec(2, ("spf",), exclusions=("SPF15",))])
    assert matcher.patterns == 2  # "spf" and "spf15", shared between the rules
    assert matcher.match("SPF30") == [0, 1]
    assert matcher.match("spf15") == [0]


def test_a_matcher_without_rules_or_patterns_matches_nothing() -> None:
    assert Matcher([]).match("敏感肌") == []
    assert Matcher([RuleSpec(1, ("好的",), mode=WHOLE)]).match("好的") == [0]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown match mode"):
        Matcher([RuleSpec(1, ("a",), mode="fuzzy")])


ALPHABET = "敏感肌面霜不是Ａａ aB１1，,!！ ｓＳs\u3000ｶカﾞ｡。"  # narrow and wide forms, to catch the matcher's shortcut
words = st.text(alphabet=ALPHABET, min_size=1, max_size=4).filter(lambda w: fold(w).strip())
rule_specs = st.lists(
    st.builds(
        RuleSpec,
        id=st.integers(1, 1000),
        keywords=st.lists(words, min_size=1, max_size=4).map(tuple),
        exclusions=st.lists(words, max_size=2).map(tuple),
        mode=st.sampled_from((ANY, ALL, EXACT, WHOLE)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=500, deadline=None)
@given(rules=rule_specs, text=st.text(alphabet=ALPHABET, max_size=20))
def test_the_automaton_agrees_with_a_plain_substring_reading(rules: list[RuleSpec], text: str) -> None:
    assert Matcher(rules).match(text) == naive_match(rules, text)
