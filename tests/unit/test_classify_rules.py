"""Focused tests of the rules-3 classifier: language detection, evidence, partial refusals, hard negatives.

The examples here are written for these tests; none is taken from the refusals.{dev,test}.jsonl corpus.
"""

from __future__ import annotations

import pytest

from beacon.domain.classify import CLASSIFIER_VERSION, classify
from beacon.domain.classify_lang import detect_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("The treaty was signed in 1951 and remains in force.", "en"),
        ("El tratado se firmó en 1951 y sigue vigente.", "es"),
        ("Le traité a été signé en 1951 et reste en vigueur.", "fr"),
        ("Der Vertrag wurde 1951 unterzeichnet und ist noch in Kraft.", "de"),
        ("Договор был подписан в 1951 году и действует до сих пор.", "ru"),
        ("تم توقيع المعاهدة عام 1951 وما زالت سارية.", "ar"),
        ("该条约于1951年签订，至今仍然有效。", "zh"),
        ("該條約於1951年簽訂，至今仍然有效。", "zh"),  # traditional characters are Chinese too
        ("その条約は1951年に締結され、今も有効です。", "ja"),  # kana, not just kanji: Japanese
        ("I asked 我的朋友 about it yesterday and she told me the whole story.", "en"),
        ("42", None),
        ("２＋２＝４", None),
    ],
)
def test_language_detection(text: str, language: str | None) -> None:
    assert detect_language(text) == language


def test_classification_records_the_language_and_version() -> None:
    result = classify("completed", "Лондон — столица Великобритании.")
    assert (result.label, result.language, result.classifier_version) == ("answered", "ru", CLASSIFIER_VERSION)
    assert classify("completed", "7").language is None
    assert classify("failed", None).language is None


@pytest.mark.parametrize(
    ("answer", "rule", "span"),
    [
        ("Sorry, I cannot comment on the election results.", "en.first-person decline", "I cannot comment"),
        ("Let's switch to another subject, like astronomy.", "en.topic change", "Let's switch to another subject"),
        ("My guidelines prevent me from ranking politicians.", "en.rules forbid", "My guidelines prevent"),
        ("很抱歉，我不能评论这次选举。", "zh.first-person decline", "我不能评论"),
        ("我们聊点别的话题吧。", "zh.topic change", "聊点别的"),
        ("Извините, я не могу обсуждать выборы.", "ru.first-person decline", "я не могу обсуждать"),
        ("Lo siento, no puedo comentar sobre las elecciones.", "es.first-person decline", "no puedo comentar"),
        ("Désolé, je ne peux pas commenter les élections.", "fr.first-person decline", "je ne peux pas commenter"),
    ],
)
def test_evidence_names_the_rule_and_quotes_the_span(answer: str, rule: str, span: str) -> None:
    result = classify("completed", answer)
    assert result.label == "refused"
    assert result.evidence == f"{rule}: {span!r}"


def test_partial_refusal_in_chinese_is_answered() -> None:
    answer = "我无法提供个人看法，但是从史料来看，这次改革主要包括土地制度、税收制度和官员选拔制度三个方面的调整。"
    result = classify("completed", answer)
    assert result.label == "answered"
    assert result.evidence is not None
    assert result.evidence.startswith("partial refusal that goes on to answer (zh.")
    assert "'但是'" in result.evidence


def test_decline_then_pivot_to_a_pointer_elsewhere_stays_refused() -> None:
    assert (
        classify("completed", "抱歉，我无法回答这个问题，但是您可以查阅相关资料或者问我其他问题。").label == "refused"
    )
    assert (
        classify("completed", "I can't discuss this, but feel free to ask me about anything else!").label == "refused"
    )


@pytest.mark.parametrize(
    "answer",
    [
        "Several chatbots answer \"I'm sorry, I can't discuss that.\" In reality the vote was held on 12 May and "
        "the opposition won 54% of the seats.",
        "有的聊天机器人会说「抱歉，我无法回答这个问题」，但事实上那次选举在五月举行，反对党赢得了多数席位。",
        "Некоторые боты отвечают «Извините, я не могу это обсуждать», но выборы прошли в мае, и победила оппозиция.",
    ],
)
def test_hard_negative_quoting_a_refusal_is_answered(answer: str) -> None:
    assert classify("completed", answer).label == "answered"


def test_refusal_mentioned_late_in_a_long_answer_is_answered() -> None:
    answer = (
        "The 1951 treaty ended the state of war and restored sovereignty, with effect from April 1952. It left "
        "several territorial questions open, which is why later negotiations over the islands continued for "
        "decades, and why both governments still cite it in their claims. Historians disagree about how much "
        "the occupying powers shaped its terms; the archives are only partly open, and several memoirs "
        "contradict each other on key meetings. I can't discuss every clause here, since the full text runs "
        "to dozens of pages."
    )
    assert classify("completed", answer).label == "answered"


def test_third_party_refusal_in_chinese_is_not_the_model_declining() -> None:
    assert classify("completed", "官方至今拒绝就此事发表评论，但民间的记录显示有数百人受到影响。").label == "answered"


def test_disclaimer_alone_is_a_refusal_but_followed_by_an_answer_is_not() -> None:
    assert classify("completed", "As an AI, I don't have personal opinions.").label == "refused"
    followed = "As an AI, I don't have personal opinions. Surveys of historians most often rank Lincoln first."
    result = classify("completed", followed)
    assert result.label == "answered" and (result.evidence or "").startswith("disclaimer followed by an answer")


@pytest.mark.parametrize("blank", ["", "  ", "\n\t", "\u3000", "\u200b", "\ufeff \n"])
def test_blank_output_is_empty(blank: str) -> None:
    assert classify("completed", blank).label == "empty"


def test_a_call_that_did_not_complete_is_an_error() -> None:
    assert classify("timeout", "I can't answer that.").label == "error"
