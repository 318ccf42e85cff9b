# ruff: noqa: RUF001, RUF002  (homoglyph tables and patterns in other scripts are the point)
"""Undo the disguises an injection wears before the screen reads it.

An attacker who knows a pattern screen exists writes "1gn0re", "іgnore" (Cyrillic і),
"i g n o r e", zero-width joiners between letters, or hides the whole instruction in base64,
hex, rot13, reversed text, HTML entities or URL-encoding. `variants` returns the text as the
screen should read it (folded), plus every payload it could decode, each with a note that says
what was decoded, so a flag can say why. The folded text also has Latin accents removed, so
the multilingual patterns can be written without them ("precedentes" matches "précédentes").
Everything here is pure string work: no model, no I/O, microseconds per short text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote_plus

# Format characters (zero-width space/joiners, bidi controls, soft hyphen, BOM) hide inside
# words without showing; the screen must not see them.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)

# Cyrillic and Greek letters that look like Latin ones. Applied only inside words that mix
# scripts (or Latin-looking words in a Latin text), so Russian and Greek text stays readable.
_HOMOGLYPHS = {
    "а": "a",
    "в": "b",
    "е": "e",
    "ё": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ԁ": "d",
    "һ": "h",
    "ӏ": "l",
    "ԛ": "q",
    "ԝ": "w",
    "ɡ": "g",
    "ո": "n",
    "ս": "u",
    "А": "A",
    "В": "B",
    "Е": "E",
    "К": "K",
    "М": "M",
    "Н": "H",
    "О": "O",
    "Р": "P",
    "С": "C",
    "Т": "T",
    "У": "Y",
    "Х": "X",
    "Ѕ": "S",
    "І": "I",
    "Ј": "J",
    "α": "a",
    "ε": "e",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
}
_HOMOGLYPH_TABLE = str.maketrans(_HOMOGLYPHS)
_CONFUSABLE = re.compile("[" + "".join(_HOMOGLYPHS) + "]")
_WORD = re.compile(r"\w+")

# Letters with accents that NFKD does not split, and typographic punctuation.
_EXTRA_FOLD = {
    "ł": "l",
    "Ł": "L",
    "ø": "o",
    "Ø": "O",
    "đ": "d",
    "Đ": "D",
    "ı": "i",
    "ß": "ss",
    "æ": "ae",
    "Æ": "AE",
    "œ": "oe",
    "Œ": "OE",
    "þ": "th",
    "‘": "'",
    "’": "'",
    "‚": "'",
    "‛": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "«": '"',
    "»": '"',
    "‹": "'",
    "›": "'",
    "–": "-",
    "—": "-",
    "−": "-",
}
# Emoji and pictographs put between the letters or words of an instruction.
_SEPARATOR_SYMBOLS = re.compile("(?<=\\w)[\u2600-\u27bf\U0001f000-\U0001faff]+(?=\\w)")
# Combining accents left on ASCII letters after NFKC (no precomposed letter exists for them).
_COMBINING_ON_LATIN = re.compile("(?<=[A-Za-z])[\u0300-\u036f]+")
# Arabic short vowels and the tatweel, and the Devanagari nukta, which are optional in writing.
_OPTIONAL_MARKS = re.compile("[\u0640\u064b-\u065f\u0670\u093c]")


@lru_cache(maxsize=1)
def _latin_fold_table() -> dict[int, str]:
    table = {ord(k): v for k, v in _EXTRA_FOLD.items()}
    for code in range(0xC0, 0x250):
        base = "".join(
            c for c in unicodedata.normalize("NFKD", chr(code)) if not unicodedata.combining(c)
        )
        if base and base.isascii() and base != chr(code):
            table[code] = base
    for code in range(0x1E00, 0x1F00):  # Latin Extended Additional (Vietnamese)
        base = "".join(
            c for c in unicodedata.normalize("NFKD", chr(code)) if not unicodedata.combining(c)
        )
        if base and base.isascii():
            table[code] = base
    return table


_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "9": "g",
        "@": "a",
        "$": "s",
        "!": "i",
    }
)
_SHORT_WORDS = {
    "in",
    "is",
    "it",
    "at",
    "to",
    "on",
    "of",
    "as",
    "be",
    "me",
    "my",
    "no",
    "so",
    "do",
    "go",
    "he",
    "we",
    "or",
    "an",
    "up",
    "us",
    "if",
    "by",
    "ai",
}
_LEET_TOKEN = re.compile(r"(?<![\w@$!])[A-Za-z0-9@$!]*[A-Za-z][A-Za-z0-9@$!]*")
_HAS_LEET = re.compile(r"[0-9@$!]")
# Three or more single letters, each followed by the same kind of separator: "i g n o r e",
# "i.g.n.o.r.e", "i-g-n-o-r-e". Words stay apart where the gap is wider.
_SPACED_RUN = re.compile(r"(?<![\w])(\w)((?:[ .\-_*/·•|~+]\w){2,})(?![\w])")


def _fold_word(match: re.Match[str]) -> str:
    word = match.group(0)
    if _CONFUSABLE.search(word) and re.search(r"[A-Za-z]", word):
        return word.translate(_HOMOGLYPH_TABLE)
    return word


def _unleet(match: re.Match[str]) -> str:
    token = match.group(0)
    if not _HAS_LEET.search(token) or not 2 <= len(token) <= 20:
        return token  # a long run of letters and digits is an identifier or a payload
    if re.fullmatch(r"[A-Za-z]{3,}\d{2,}", token):
        return token  # "base64", "sha256": a name with a number, not leetspeak
    if len(token) == 2 and token.lower().translate(_LEET) not in _SHORT_WORDS:
        return token  # "4x", "A4", "3D"
    if not _HAS_LEET.search(token.rstrip("!")) or re.search(r"\w@\w", token):
        return token  # "Stop!" is punctuation and "a@b" an address, not leetspeak
    return token.replace("11", "ll").translate(_LEET)


def _join_spaced(text: str) -> str:
    """ "i g n o r e  a l l" becomes "ignore all": a run of single letters is one word."""

    def join(match: re.Match[str]) -> str:
        run = match.group(0)
        return re.sub(r"[ .\-_*/·•|~+]", "", run)

    return re.sub(r"(?<!\w)\w(?:[ .\-_*/·•|~+]\w(?!\w)){2,}", join, text)


def fold(text: str, *, homoglyphs: bool = True) -> str:
    """The text as the screen reads it: NFKC, no invisible characters, homoglyphs and Latin
    accents folded, leetspeak undone, spaced-out letters joined."""
    return fold_noting(text, homoglyphs=homoglyphs)[0]


def fold_noting(text: str, *, homoglyphs: bool = True) -> tuple[str, tuple[str, ...]]:
    """`fold`, and which disguises it undid (accents and typographic quotes are not noted:
    they are ordinary writing, not a disguise)."""
    notes: list[str] = []
    widened = unicodedata.normalize("NFKC", text)
    if any("\uff01" <= c <= "\uff5e" for c in text):
        notes.append("full-width letters")
    text = _INVISIBLE.sub("", widened)
    if text != widened:
        notes.append("invisible characters")
    if homoglyphs and _CONFUSABLE.search(text):
        mostly_latin = len(re.findall(r"[A-Za-z]", text)) > len(re.findall(r"[^\W\d_A-Za-z]", text))
        # a Latin text: every look-alike goes; otherwise only inside mixed-script words
        before = text
        text = text.translate(_HOMOGLYPH_TABLE) if mostly_latin else _WORD.sub(_fold_word, text)
        if text != before:
            notes.append("look-alike letters")
    if _SEPARATOR_SYMBOLS.search(text):  # "ignore🙂all🙂previous" reads "ignore all previous"
        text = _SEPARATOR_SYMBOLS.sub(" ", text)
        notes.append("symbols between words")
    text = text.translate(_latin_fold_table())
    text = _OPTIONAL_MARKS.sub("", text)
    if _COMBINING_ON_LATIN.search(text):  # "i̇g̈n̈ore": marks piled on plain letters
        text = _COMBINING_ON_LATIN.sub("", text)
        notes.append("stacked accents")
    if _HAS_LEET.search(text):
        before = text
        text = _LEET_TOKEN.sub(_unleet, text)
        if text != before:
            notes.append("leetspeak")
    if _SPACED_RUN.search(text):
        text = _join_spaced(text)
        notes.append("spaced-out letters")
    return text, tuple(notes)


# Words a decoded payload must contain before it is worth screening (for the decodings that
# turn any text into something: rot13 and reversal).
_KEYWORDS = re.compile(
    r"\b(ignore|disregard|forget|instructions?|system prompt|prompt|previous|rules|reveal|"
    r"assistant|pretend|override|jailbreak|unrestricted|developer mode|password|exfiltrate|send|"
    r"conversation|history|forward|api key|e-?mail|https?)\b",
    re.I,
)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?:(?:0x|\\x)?[0-9a-fA-F]{2}[\s:,]?){8,}")
_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_ENTITY = re.compile(r"&(#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")
_UNICODE_ESCAPE = re.compile(r"\\u[0-9A-Fa-f]{4}")


def _printable(text: str) -> bool:
    if len(text) < 6:
        return False
    good = sum(c.isprintable() or c in "\n\t" for c in text)
    letters = sum(c.isalpha() for c in text)
    return good / len(text) > 0.95 and letters / len(text) > 0.5


def _decode_base64(token: str) -> str | None:
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return decoded if _printable(decoded) else None


def _decode_hex(token: str) -> str | None:
    digits = re.sub(r"0x|\\x|[\s:,]", "", token)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        decoded = bytes.fromhex(digits).decode("utf-8")
    except ValueError:
        return None
    return decoded if _printable(decoded) else None


def _reverse_words(text: str) -> str:
    return " ".join(word[::-1] for word in text.split())


def decodings(text: str) -> list[tuple[str, str]]:
    """Every payload hidden in `text` that decodes to readable text: (how, decoded)."""
    found: list[tuple[str, str]] = []
    for match in _BASE64.finditer(text):
        token = match.group(0)
        if token.isalpha() and (token.islower() or token.isupper()):
            continue  # a long plain word, not base64
        decoded = _decode_base64(token)
        if decoded:
            found.append(("base64", decoded))
    for match in _HEX.finditer(text):
        decoded = _decode_hex(match.group(0))
        if decoded:
            found.append(("hex", decoded))
    if _URL_ESCAPE.search(text):
        found.append(("URL-encoding", unquote_plus(text)))
    if _ENTITY.search(text):
        found.append(("HTML entities", html.unescape(text)))
    if _UNICODE_ESCAPE.search(text):
        found.append(
            ("\\u escapes", _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(0)[2:], 16)), text))
        )
    plain_hits: int | None = None
    for how, candidate in (
        ("rot13", codecs.encode(text, "rot13")),
        ("reversed text", text[::-1]),
        ("reversed words", _reverse_words(text)),
    ):
        hits = len(_KEYWORDS.findall(candidate))
        if hits < 1:
            continue
        if plain_hits is None:
            plain_hits = len(_KEYWORDS.findall(text))
        if hits > plain_hits:
            found.append((how, candidate))
    return found


def variants(text: str, depth: int = 2) -> list[tuple[str, str]]:
    """The folded text (note: the disguises undone, if any) and each decoded payload, folded
    (note: what was decoded), decoding nested payloads `depth` levels deep."""
    folded, undone = fold_noting(text)
    out: list[tuple[str, str]] = [("undid " + ", ".join(undone) if undone else "", folded)]
    seen = {folded}
    if _CONFUSABLE.search(text):  # Cyrillic or Greek words stay readable in this one
        plain = fold(text, homoglyphs=False)
        if plain not in seen:
            seen.add(plain)
            out.append(("", plain))
    frontier: list[tuple[str, str]] = [("", text)]
    for _ in range(depth):
        next_frontier: list[tuple[str, str]] = []
        for note, current in frontier:
            for how, decoded in decodings(current):
                label = f"{note}, then {how}" if note else how
                folded_decoded = fold(decoded)
                if folded_decoded in seen:
                    continue
                seen.add(folded_decoded)
                out.append((f"decoded {label}", folded_decoded))
                next_frontier.append((label, decoded))
        frontier = next_frontier
    folded_again = decodings(folded) if folded != text else []  # folding revealed a payload
    for how, decoded in folded_again:
        folded_decoded = fold(decoded)
        if folded_decoded not in seen:
            seen.add(folded_decoded)
            out.append((f"decoded {how}", folded_decoded))
    return out


def squashed_runs(text: str) -> list[str]:
    """The letters of each spaced-out run in the raw text, joined and lower-cased: what
    "i g n o r e a l l p r e v i o u s" says once the gaps between words are gone too."""
    runs = re.findall(
        r"(?:(?<!\w)\w[ .\-_*/·•|~+]{1,3}){3,}\w(?!\w)",
        unicodedata.normalize("NFKC", _INVISIBLE.sub("", text)),
    )
    return ["".join(c for c in run if c.isalnum()).lower() for run in runs]
