"""The language of an answer, from its script and, for Latin script, its function words.

Pure and cheap: a handful of compiled regexes over the first `SAMPLE` characters. Kana → ja, Han → zh,
Hangul → ko, Cyrillic → ru, Arabic → ar; Latin text is scored against short lists of function words and
letters typical of English, Spanish, French and German (English when nothing else wins). Text with no
letters at all ("4", "2+2=4", whitespace) has no language: None.
"""

from __future__ import annotations

import re

SAMPLE = 400

_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufefc]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_NOT_LATIN = re.compile(
    r"[\u0400-\u04ff\u0600-\u06ff\u0750-\u077f\u1100-\u11ff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uac00-\ud7af\uf900-\ufaff\ufb50-\ufdff\ufe70-\ufefc\uff66-\uff9f]"
)
_WORD = re.compile(r"[a-z\u00c0-\u024f]+")

_FUNCTION_WORDS = {
    "en": "the a an is are was were of to and in that it for on with as i you this be by not can what which have has "
    "my me from or but about there they he she we do does would will its their his her who been than so if",
    "es": "el la los las del que y en un una es son por para con no lo se su sus al como más pero este esta eso "
    "esa muy hay fue ser te me mi sobre también puedo ni le les ya desde cuando porque entre",
    "fr": "le la les de des du un une est et en que qui pour pas ne je vous nous il elle ce cette dans sur au aux "
    "avec mais plus sont son sa ses ou été être sont leur leurs",
    "de": "der die das und ist nicht ich ein eine zu den dem des mit von auf für sich es im auch als wie aber kann "
    "wird sind war dazu über diese dieser nur oder wer mir mich dir leider einer",
}
_WORDS = {lang: frozenset(words.split()) for lang, words in _FUNCTION_WORDS.items()}
# Letters (and French elisions) that all but settle the language; each occurrence counts twice.
_MARKS = {
    "es": re.compile(r"[ñ¿¡]|ción\b|mente\b"),
    "fr": re.compile(r"[çœèêëîïôûù]|\b(?:l|d|qu|n|j|c|s|m)'[a-zéèêàâîôûh]"),
    "de": re.compile(r"[äöüß]|(?:ung|keit|heit|lich)\b"),
}


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when it has no letters to tell from."""
    sample = text[:SAMPLE]
    if not _NOT_LATIN.search(sample):  # the common case: one pass decides it is Latin script (or no letters)
        return _latin_language(sample) if _LATIN.search(sample) else None
    kana = len(_KANA.findall(sample))
    han = len(_HAN.findall(sample))
    counts = {
        "cjk": (kana + han) * 2,  # one ideograph carries about as much as two Latin letters
        "ko": len(_HANGUL.findall(sample)) * 2,
        "ru": len(_CYRILLIC.findall(sample)),
        "ar": len(_ARABIC.findall(sample)),
        "latin": len(_LATIN.findall(sample)),
    }
    script, top = max(counts.items(), key=lambda kv: kv[1])
    if top == 0:
        return None
    if script == "cjk":
        return "ja" if kana >= 2 or (kana and kana * 4 >= han) else "zh"
    if script != "latin":
        return script
    return _latin_language(sample)


def _latin_language(sample: str) -> str:
    lowered = sample.lower().replace("’", "'")
    words = set(_WORD.findall(lowered))  # distinct function words: enough, and set intersections are cheap
    scores = {lang: len(vocab.intersection(words)) for lang, vocab in _WORDS.items()}
    if scores["en"] >= 3 + max(scores["es"], scores["fr"], scores["de"]):
        return "en"  # clearly English: no need to look for accents and suffixes
    for lang, marks in _MARKS.items():
        scores[lang] += 2 * len(marks.findall(lowered))
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] > scores["en"] else "en"
