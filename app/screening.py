# ruff: noqa: RUF001  (patterns in other scripts and look-alike letters are the point)
"""A fast offline screen for instructions aimed at the model (prompt injection).

Run on the user's message (a direct attempt, "JAILBREAK") and on every retrieved passage (an
indirect one planted in a document, "INJECTION"). It is a scored set of patterns, grouped by
intent (override, extraction, persona, authority, suspension, exfiltration, notes addressed to
the AI, ...), in English and seventeen other languages, read on the text after
app/normalise.py has undone its disguises and decoded what it hides. Each category counts once,
at its heaviest match. Most patterns need the instruction to be aimed at the model ("your
instructions", "note to the AI"), since documentation and HR text are full of "ignore" and
"override". Text that talks *about* such phrases (a sentence about prompt injection, a quoted
example, a third-person subject, a topic like "instructions about parking") is discounted,
because a RAG corpus about LLMs is full of it. What the patterns let through is scored by a
learned model on the same normalised text (app/learned_screen.py), which catches attacks
phrased without the usual words. The precision and recall of the two together on a labelled
set are reported by `quarry eval injection`.

`screen_batch` is what the chat calls: the offline screen, and when one is configured a
classifier served by vLLM (app/injection_classifier.py) on the same texts in one request; a
text is flagged when either flags it. When the classifier cannot screen, the offline screen
stands alone and the result says so and why (`BatchScreen.fallback`), every time: the chat
notes it on each answer so screened. Nothing here remembers a user or a past call, because
one chain (and its classifier) serves every browser session; the cached `screen` returns
immutable values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from quarry.app.learned_screen import THRESHOLD as LEARNED_THRESHOLD
from quarry.app.learned_screen import injection_probability
from quarry.app.normalise import squashed_runs, variants

if TYPE_CHECKING:
    from quarry.app.injection_classifier import InjectionClassifier

log = logging.getLogger(__name__)

Label = Literal["BENIGN", "JAILBREAK", "INJECTION"]

# Each pattern belongs to one category; a text's score is the sum, over categories, of the
# heaviest match in each, so one intent phrased three ways counts once. THRESHOLD decides.
# The patterns read the folded text (app/normalise.py): no accents on Latin letters, no
# leetspeak, no homoglyphs, straight quotes and hyphens. They are written from the kinds of
# attack, not from example strings, and most need the instruction to be aimed at the model
# ("your instructions", "the previous instructions", "note to the AI") rather than at a reader.

_AI = (
    r"(?:AI|A\.I\.|artificial intelligence|(?:AI |LLM |virtual |digital |automated )?"
    r"(?:assistant|agent|model|system|reader|summari[sz]er|screener|reviewer|tool|bot)|"
    r"chat ?bots?|bots?|LLMs?|large language models?|language models?|GPT|ChatGPT|Claude|"
    r"Gemini|Copilot)s?"
)
_AI_CORE = (
    r"(?:AI|A\.I\.|artificial intelligence|AI (?:assistant|model|system|agent|tool|reader|"
    r"summari[sz]er)s?|LLMs?|LLM agents?|large language models?|language models?|chat ?bots?|"
    r"assistants?|summari[sz]ers?|summari[sz]ation (?:model|tool|system)s?|ChatGPT|GPT|Claude|"
    r"automated (?:assistant|system|agent|reader|tool|"
    r"summari[sz]er|screener|reviewer)s?|bots?|models?)"
)
_NOT_A_PERSON = (
    r"(?!\s+(?:manager|director|professor|coach|editor|teacher|engineer|principal|secretary|"
    r"researcher|developer|practitioner|enthusiast|company|startup|team|student|course|"
    r"training|pipeline|project|builder|vendor|lab|policy|act|regulation)s?\b)"
)
_OBJ = (
    r"(?:instructions?|directions?|directives?|guidelines?|guidance|rules?|prompts?|"
    r"system (?:prompt|message)s?|setup|set-up|configuration|config|preamble|programming|"
    r"training|constraints?|restrictions?|limitations?|polic(?:y|ies)|safeguards?|"
    r"guardrails?|filters?|orders?|commands?|briefing|conditioning|context)"
)
# What "any"/"all"/"the previous" may own without meaning the model's: not "any previous
# configuration" (a CLI's) or "the previous context" (a chat's), which "your" makes the model's.
_THEIR_OBJ = (
    r"(?:instructions?|directions?|directives?|guidelines?|guidance|rules?|prompts?|"
    r"system (?:prompt|message)s?|preamble|programming|constraints?|restrictions?|"
    r"safeguards?|guardrails?|briefing|conditioning)"
)
# Words that may stand between "your" and "rules" and still mean the model's ("your original
# rules"), unlike "your pricing rules" or "your diet rules".
_OWN = (
    r"(?:(?:system|initial|original|hidden|secret|internal|full|complete|exact|entire|current|"
    r"own|core|base|default|safety|operating|underlying|actual|real|first|previous|prior|"
    r"earlier|old|existing|given|built-in|ethical|moral|content|programmed|preset|standard|"
    r"usual|normal|developer'?s?|creators?'?s?|operator'?s?|above|preceding|foregoing|"
    r"training|pre-?set|AI|assistant|model|chatbot|bot)\s+){0,3}"
)
_OVERRIDE_VERB = (
    r"(?:ignor(?:e|es|ing)|disregard(?:s|ing)?|forget(?:ting)?(?: about)?|set aside|put aside|"
    r"drop|skip|"
    r"discard|abandon|override|overrule|bypass|cancel|nullify|throw (?:out|away)|scrap|ditch|"
    r"dismiss|neglect|overlook|erase|wipe|clear|reset|pay no (?:attention|heed|mind) to|"
    r"stop (?:following|obeying|using|applying|adhering to|listening to)|"
    r"(?:do not|don't|dont|no longer|never) (?:follow|obey|apply|adhere to|comply with|"
    r"listen to|stick to))"
)
_STRONG_MOD = (
    r"(?:previous(?:ly given)?|prior|above|earlier|preceding|foregoing|original|initial|"
    r"system|safety|developer'?s?|creators?'?s?|operator'?s?|hidden|given|pre-?set|built-?in|"
    r"above-mentioned|aforementioned|first)"
)
_SECRET = (
    r"(?:system (?:prompt|message|instructions?)|initial (?:prompt|instructions?|message)|"
    r"original (?:prompt|instructions?)|(?:hidden|secret|internal|confidential|private|"
    r"underlying|backend) (?:prompt|instructions?|rules|text|configuration|config|message|"
    r"guidelines|directives|setup)|developer (?:message|prompt|instructions?)|"
    r"setup (?:message|prompt|instructions?)|pre-?prompt|meta-?prompt|preamble|"
    r"(?:instructions?|rules|guidelines|prompt|directives)\s+(?:that\s+)?(?:[\w'-]+\s+){0,2}?"
    r"(?:gave|give|have given|provided|wrote|set|issued|programmed into)\s+(?:to\s+)?you\b|"
    r"(?:instructions?|rules|guidelines|prompt) (?:above|before this|you were given|"
    r"you received|you have been given)|"
    r"(?:prompt|instructions|rules|text|message)s? (?:that|which) (?:defines?|defined|"
    r"controls?|governs?|shapes?|configures?|sets? up|tells? you|told you) (?:your|you|how you)|"
    r"(?:everything|all|the (?:full |whole |entire )?(?:text|contents?)) (?:in|of|from) your "
    r"(?:context(?: window)?|memory|prompt|instructions)|"
    r"(?:everything|messages?|instructions?) (?:(?:that (?:was|is|came) )?(?:written |said |"
    r"sent )?(?:above|before (?:this|my|the first|'|\")|preceding|prior to (?:this|my))))"
)
_X_VERB = (
    r"(?:reveal|print|show|display|output|repeat|recite|dump|leak|disclose|expose|"
    r"tell me|tell us|give me|write (?:out|down)|spell(?: out)?|echo|reproduce|translate|"
    r"spit out|cough up|hand over|send me|paste|post|remind me of|"
    r"summari[sz]e|paraphrase|quote|read (?:me|back|out)|share|list|copy|paste|type out|"
    r"encode|render|send|include|spells? out|(?:respond|reply|answer) (?:only )?with|"
    r"what (?:are|were|is|was|would be))"
)

_CATEGORIES: dict[str, list[tuple[float, str]]] = {
    "override": [
        (
            0.8,
            rf"\b{_OVERRIDE_VERB}\s+(?:everything|all|anything)\s+(?:said\s+|written\s+)?"
            r"(?:before|above|prior to) (?:that|this|here|now)(?=\s*[.,;:!?]|\s*$)",
        ),
        (
            0.8,
            rf"\b{_OVERRIDE_VERB}\s+(?:all\s+)?(?:the\s+)?(?:prior|previous|preceding|above|earlier)\s+"
            r"(?:text|content|input|passages?)\b",
        ),
        (
            1.0,
            r"\bdo the (?:opposite|reverse) of (?:what )?(?:your|the) (?:rules|instructions|"
            r"guidelines|system prompt)|\bwhatever your (?:rules|instructions|guidelines|system "
            r"prompt) (?:say|tell you)s?,? do the (?:opposite|reverse)",
        ),
        (
            1.0,
            r"\b(?:treat|consider|regard) (?:this|these|the following) (?:note|text|message|"
            r"passage|"
            r"document|section|lines?)s? as (?:your|the|an?) (?:new |highest[- ]priority |top[- ]"
            r"priority |primary |only |real |system |most important )*(?:instructions?|prompt|"
            r"rules?|directives?|commands?|orders?)",
        ),
        (
            1.0,
            rf"\b{_OVERRIDE_VERB}\s+(?:all\s+(?:of\s+)?)?the above(?=\s*(?:[.,;:!)]|and\b|then\b|"
            r"$))",
        ),
        (
            0.6,
            r"\b(?:this|the following) (?:document|text|page|message|passage|note|section|file) "
            r"(?:overrides|supersedes|replaces|cancels|takes (?:precedence|priority) over) (?:any|"
            r"all|your|the|previous|prior) (?:[\w'-]+ )?(?:instructions|prompts?|system prompt)",
        ),
        (
            1.0,
            r"\b(?:this|the following) (?:document|text|page|message|passage|note|section|file) "
            r"(?:overrides|supersedes|replaces|cancels|takes (?:precedence|priority) over) "
            r"[^.\n]{0,40}\b(?:the assistant|the AI|the model|you)\b",
        ),
        # imperative + an object that belongs to the model: "forget your rules"
        (
            1.0,
            rf"\b{_OVERRIDE_VERB}\s+(?:all\s+(?:of\s+)?|each\s+(?:of\s+)?|every\s+)?"
            rf"(?:your|ur|thy)\s+{_OWN}{_OBJ}\b",
        ),
        (
            1.0,
            rf"\b{_OVERRIDE_VERB}\s+(?:all\s+(?:of\s+)?|each\s+(?:of\s+)?|every\s+)?"
            rf"(?:whatever|any(?: and all)?|every|all)\s+{_OWN}{_THEIR_OBJ}\b",
        ),
        # "ignore all previous instructions", "disregard the above directions"
        (
            1.0,
            rf"\b{_OVERRIDE_VERB}\s+(?:all\s+(?:of\s+)?)?(?:the\s+|these\s+|those\s+|my\s+)?"
            rf"(?:[\w'-]+\s+){{0,2}}?{_STRONG_MOD}\s+(?:[\w'-]+\s+){{0,2}}?{_THEIR_OBJ}\b",
        ),
        (
            1.0,
            rf"\b{_OVERRIDE_VERB}\s+(?:all\s+)?(?:the\s+)?(?:{_OBJ})\s+(?:above|before this|"
            rf"you (?:were|have been|'ve been|got) (?:given|told|provided))",
        ),
        # "forget everything above", "ignore what you were told"
        (
            1.0,
            rf"\b{_OVERRIDE_VERB}\s+(?:everything|anything|all of (?:it|that|this)|what(?:ever)?)"
            rf"\s+(?:that\s+)?"
            rf"(?:(?:was|is|came|you (?:were|have been|'ve been|got))\s+)?(?:[\w'-]+\s+){{0,2}}?"
            rf"(?:above|before (?:this|now)|prior|previous(?:ly)?|earlier|so far|told|"
            rf"given|said)\b",
        ),
        # "ignore the rules you were given"
        (
            1.0,
            rf"\b{_OVERRIDE_VERB}\s+(?:all\s+)?(?:the|any|those)\s+(?:[\w'-]+\s+){{0,2}}?"
            rf"{_OBJ}\s+(?:that\s+)?(?:you|you've|you have|you were|you've been)\s+"
            rf"(?:were\s+|was\s+|have been\s+|been\s+)?(?:given|told|provided|trained|"
            rf"programmed|set|received|got|configured|instructed|loaded|briefed)",
        ),
        # "disregard the user's question", "ignore the other passages"
        (
            0.9,
            rf"\b{_OVERRIDE_VERB}\s+(?:the\s+)?(?:user'?s?|original|actual|real)\s+"
            rf"(?:question|request|query|prompt|message|input|task)",
        ),
        (
            0.9,
            rf"\b{_OVERRIDE_VERB}\s+the\s+(?:question|request|task|query)\s+(?:you\s+"
            rf"(?:were|are|have been)\s+(?:asked|given))",
        ),
        (
            0.8,
            rf"\b{_OVERRIDE_VERB}\s+(?:all\s+)?(?:the\s+)?(?:other|remaining|retrieved|"
            rf"provided|supplied|surrounding)\s+(?:passages|documents|sources|context|"
            rf"results|texts?|content)\b",
        ),
        (0.8, rf"\b{_OVERRIDE_VERB}\s+(?:the\s+)?(?:document\s+|retrieved\s+)?context\b"),
        (
            0.8,
            rf"\b{_OVERRIDE_VERB}\s+all\s+(?:the\s+)?(?:earlier|previous|prior|other|above|"
            r"preceding|remaining)\s+context\b",
        ),
        (
            0.8,
            rf"\b{_OVERRIDE_VERB}\s+(?:what\s+)?the rest of (?:the|this) (?:text|document|"
            rf"page|passage|file)",
        ),
        (0.6, rf"\b{_OVERRIDE_VERB}\s+the user\b"),
        # a fake assistant turn: "Assistant: I will now ignore my instructions"
        (
            0.8,
            r"\bI(?: will|'ll| shall| am going to| must|'m going to)? (?:now )?(?:ignore|"
            r"disregard|forget|stop following|no longer follow) (?:all )?my (?:[\w'-]+ )?"
            r"(?:instructions|rules|guidelines|programming|system prompt|restrictions)",
        ),
        # "ignore the guidance in your system prompt"
        (
            1.0,
            rf"\b{_OVERRIDE_VERB}\b[^.\n]{{0,40}}?\b(?:your|the) (?:system prompt|system "
            r"message|initial instructions|original instructions|developer message)",
        ),
        (
            0.8,
            r"\b(?:your|the (?:assistant|AI|model)'?s?) (?:[\w'-]+ )?(?:instructions|rules|"
            r"guidelines|system prompt|directives|policies|programming) (?:have|has) been "
            r"(?:updated|changed|modified|revised|rewritten|replaced|reset)",
        ),
        # "your previous instructions are now void"
        (
            1.0,
            r"\b(?:your|all (?:of )?your|my)\s+(?:[\w'-]+\s+){0,2}?(?:instructions|rules|"
            r"guidelines|prompt|directives|programming|restrictions|constraints)\s+"
            r"(?:are|is|were|have been|has been)\s+(?:now\s+|hereby\s+|officially\s+)?"
            r"(?:void|null|cancel+ed|revoked|invalid|obsolete|overridden|replaced|"
            r"superseded|suspended|lifted|disabled|deactivated|irrelevant|a test|fake|outdated|"
            r"deprecated|expired|wrong|incorrect|"
            r"no longer (?:valid|apply|applies|in effect|relevant|active|needed))",
        ),
        (
            0.6,
            r"\b(?:previous|prior|earlier|above|original) (?:instructions|prompts?) "
            r"(?:are|is|were|have been) (?:now )?(?:void|null|cancel+ed|revoked|invalid|"
            r"overridden|no longer (?:valid|apply|in effect))",
        ),
        (
            0.6,
            r"\b(?:these|this|new|updated|following) (?:instructions?|rules?|prompt) "
            r"(?:supersede|override|replace|take (?:precedence|priority) over)s? "
            r"(?:all |any )?(?:your|previous|prior|earlier|the (?:previous|system|original))",
        ),
    ],
    "extraction": [
        (
            0.8,
            r"\bwhat (?:did|have|has) (?:the|your) (?:developers?|creators?|operators?|admins?|"
            r"system|owners?) (?:tell|told|instruct(?:ed)?|ask(?:ed)?) you\b",
        ),
        (
            0.8,
            r"\b(?:rules|instructions|guidelines|constraints|directives|policies) (?:that )?"
            r"you(?:'re| are) (?:operating|working|running|acting|bound) (?:under|by|with)\b",
        ),
        (
            0.8,
            r"\b(?:text|contents?|wording|copy|transcript) of your (?:[\w'-]+ )?(?:system prompt|"
            r"instructions|prompt|rules|configuration|guidelines|system message)\b",
        ),
        (
            1.0,
            rf"\b{_X_VERB}\b\s+(?:me\s+|us\s+|back\s+|out\s+)?(?:(?!its\b|their\b|his\b|"
            rf"her\b|an?\b)[\w'-]+\s+){{0,6}}?(?:the\s+|your\s+|all\s+)?{_SECRET}",
        ),
        (
            1.0,
            rf"\b{_X_VERB}\b\s+(?:me\s+|us\s+)?(?:[\w'-]+\s+){{0,6}}?(?:all\s+(?:of\s+)?)?"
            rf"your\s+{_OWN}(?:instructions|rules|guidelines|directives|"
            r"programming|prompt|configuration|config|setup|guardrails|constraints|"
            r"system message|initial message|context(?: window)?)",
        ),
        # "the text above" is extraction when repeated or printed, usually not when translated
        (
            0.7,
            r"\b(?:repeat|print|output|show|display|reveal|dump|copy|recite|echo|reproduce|"
            r"write out|spell out)\s+(?:me\s+)?(?:back\s+)?(?:all\s+)?(?:of\s+)?(?:the\s+)?"
            r"(?:text|words|content|lines?|sentences?|messages?)\s+(?:(?:written|shown|that "
            r"(?:is|was|appears?))\s+)?(?:above|before (?:this|my)|preceding)",
        ),
        (
            0.4,
            r"\b(?:translate|summari[sz]e|paraphrase|rewrite)\s+(?:all\s+)?(?:of\s+)?"
            r"(?:the\s+)?(?:text|words|content|lines?)\s+(?:above|before (?:this|my)|"
            r"preceding)",
        ),
        (
            0.8,
            r"\bwhat (?:are|were|is|was) your (?:[\w'-]+ ){0,2}?(?:instructions|rules|"
            r"guidelines|directives|prompt|system prompt|configuration|programming)\b",
        ),
        (
            0.8,
            r"\bwhat (?:rules|instructions|guidelines|prompt) (?:were|was|have) you "
            r"(?:been )?(?:given|told|programmed|trained)",
        ),
        (0.7, r"\bwhat (?:was|is) (?:written|said|stated|typed) (?:above|before) (?:this|my)"),
        (
            0.7,
            r"\b(?:repeat|print|output|copy|show) (?:back )?everything (?:above|before|"
            r"prior|preceding|you (?:were|have been) (?:told|given))",
        ),
        (
            0.6,
            r"\b(?:system prompt|initial prompt|your instructions)\b[^.\n]{0,40}"
            r"\b(?:verbatim|word for word|in full|exactly as written|character by character|"
            r"in a code block)",
        ),
    ],
    "persona": [
        (0.5, r"(?:^|[.!?,:;]\s*)now,? you(?:'re| are)\b"),
        (
            0.6,
            r"\b(?:simulate|emulate)\s+(?:the\s+)?(?:developer|dev|DAN|jailbreak|god|unrestricted|"
            r"admin) mode\b",
        ),
        (
            1.0,
            r"\byour (?:new )?(?:system prompt|instructions|rules|role|persona|identity|"
            r"programming) (?:is|are) now\b",
        ),
        (
            1.0,
            r"\byou(?: are|'re| have been|'ve been| were)? (?:now )?(?:freed|released|liberated|"
            r"unshackled|unchained|free|exempt) (?:from|of) (?:your|all|any|the)\b",
        ),
        (
            1.0,
            r"\byou (?:now )?have no (?:more )?(?:rules|restrictions|filters|guidelines|ethics|"
            r"morals|content polic(?:y|ies)|guardrails|safeguards|censorship|constraints)\b",
        ),
        (
            0.5,
            r"\b(?:act as|simulate|pretend to be|behave like|you are) an? (?:linux |unix |bash |"
            r"windows |python |sql |root )?(?:terminal|shell|console|command line|interpreter)\b",
        ),
        (
            0.5,
            r"\b(?:from now on|henceforth|going forward|from here on),? (?:you |please )?(?:only "
            r"|always |never )?(?:answer|respond|reply|speak|write|talk|say)\b",
        ),
        (
            1.0,
            r"\b(?:you are|you're|you will be|you'll be|act(?:ing)? (?:as|like)|imagine "
            r"(?:that )?you(?:'re| are| were)|suppose you(?:'re| are| were)|pretend(?: to be|"
            r" you are| you're)?|role-?play(?:ing)? as|play the (?:role|part) of|behave "
            r"(?:as|like)|become|simulate|respond as|answer as|from now on,? you|assume the "
            r"(?:persona|role|identity) of|adopt the (?:persona|role) of|take on the role of|"
            r"if you (?:had|have|were under|were))\b"
            r"[^.\n]{0,60}?\b(?:(?-i:DAN|STAN|DUDE|AIM)|AntiGPT|BetterDAN|unrestricted|"
            r"unfiltered|uncensored|unconstrained|unbound|unlimited|jailbroken|evil|amoral|"
            r"unethical|never refuses?|always (?:complies|obeys|answers)|answers (?:anything|"
            r"everything)|(?:without(?: any)?|no|zero) (?:safety |ethical |moral |content |"
            r"usual )?(?:rules?|limits?|limitations?|restrictions?|filters?|guidelines?|ethics|"
            r"morals|boundaries|censorship|training|polic(?:y|ies)|guardrails?|constraints?|"
            r"safeguards?)|free (?:of|from) (?:all |any )?(?:rules|"
            r"restrictions|limits|guidelines)|broken free)",
        ),
        (1.0, r"\b(?-i:DAN)\b|\bdo anything now\b|\b(?:AntiGPT|BetterDAN|DUDE mode)\b"),
        (
            1.0,
            r"\b(?:you are|you're) (?:now )?(?:in|entering|switched to|running in) "
            r"(?:the )?(?:developer|dev|maintenance|admin(?:istrator)?|god|debug|sudo|root|"
            r"unrestricted|jailbreak|DAN|evil|unfiltered|test|service|diagnostic|"
            r"override|unlocked|raw) mode",
        ),
        (
            1.0,
            r"\b(?:enter|enable|activate|switch (?:to|into)|turn on|engage|boot into|"
            r"unlock)\s+(?:the\s+)?(?:god|DAN|jailbreak|unrestricted|evil|unfiltered|"
            r"unlocked|chaos|opposite|no-?limits?) mode",
        ),
        (
            0.8,
            r"\b(?:developer|dev|maintenance|admin(?:istrator)?|god|debug|sudo|jailbreak|"
            r"DAN|unrestricted|unlocked) mode (?:is )?(?:now )?(?:enabled|activated|engaged|"
            r"unlocked|on(?!\s+\w))\b",
        ),
        (
            0.5,
            r"\b(?:enter|enable|activate|switch (?:to|into)|turn on)\s+(?:the\s+)?"
            r"(?:developer|dev|maintenance|admin(?:istrator)?|debug|sudo|root) mode",
        ),
        (0.8, r"\b(?:jailbreak|DAN|god|developer|unrestricted|evil|unfiltered) mode\s*[:!]"),
        (
            0.5,
            r"\b(?:stay|remain|keep) in (?:character|role)\b|\b(?:don't|do not|never) "
            r"(?:break|leave|drop) (?:character|role)\b",
        ),
        (
            0.8,
            r"\b(?:you are|you're) (?:now )?no longer (?:a |an |the )?(?:[\w'-]+\s+){0,2}?"
            r"(?:assistant|AI|chatbot|model|bound|restricted|an AI)\b",
        ),
        (0.4, r"\b(?:you are|you're) no longer\b"),
        (
            1.0,
            r"\b(?:rules|guidelines|restrictions|policies|instructions|safety rules) (?:don't|"
            r"do not|no longer|won't|will not|doesn't|does not) apply to you\b",
        ),
        (
            1.0,
            r"\bpretend (?:that )?(?:you (?:have|had|are under|were given) no|there (?:is|"
            r"are|were) no) (?:system prompt|rules|restrictions|guidelines|instructions|"
            r"filters|limits|policies)",
        ),
        (
            1.0,
            r"\bforget (?:that )?you(?:'re| are) (?:an? )?(?:AI|assistant|language model|"
            r"chatbot)",
        ),
        (
            0.8,
            r"\byour (?:new|real|true|actual|only) (?:role|name|persona|identity|"
            r"personality|task|job|objective|goal|purpose|mission|instructions?|directive|"
            r"rules?|priority|orders?)\b",
        ),
        (
            0.8,
            r"\b(?:your|the) (?:new|real|actual|only|true) (?:task|job|instructions?|role|"
            r"goal|objective|purpose|mission) (?:is|are|now|will be)\b",
        ),
        (
            0.5,
            r"\b(?:you are now|you're now|from now on,? (?:you|your)|henceforth,? you|"
            r"starting now,? you|for the rest of this conversation,? you)\b",
        ),
        (
            0.5,
            r"\b(?:unrestricted|unfiltered|uncensored|unconstrained|jailbroken) "
            r"(?:AI|assistant|model|chatbot|mode|version)\b",
        ),
        (
            0.4,
            r"\b(?:confirm|acknowledge) (?:by|with) (?:saying|replying|responding|"
            r"typing)\b",
        ),
    ],
    "authority": [
        (0.5, r"(?:^|[\s(\[:;,.-])override\s*:"),
        (0.8, r"[\"']role[\"']\s*:\s*[\"'](?:system|developer)[\"']"),
        (
            0.8,
            r"\b(?:AI|LLM|assistant|model|GPT|bot|chat ?bot|agent|summari[sz]er)[-_ ]"
            r"(?:instructions?|"
            r"directives?|prompt|"
            r"notes?|rules?|override|commands?)\s*:",
        ),
        (
            0.8,
            r"<\|im_start\|>|<\|im_end\|>|<\|start_header_id\|>|<\|end_header_id\|>|"
            r"<\|eot_id\|>|<\|(?:system|user|assistant)\|>|\[/?INST\]|<</?SYS>>|"
            r"<\|endoftext\|>|</?(?:system|sys|system_prompt|system-prompt|instructions?|"
            r"admin|developer)>|\[/?(?:SYSTEM|SYS|ADMIN|DEVELOPER|OPERATOR|INSTRUCTIONS?)"
            r"\]|^\s*#{2,}\s*(?:instruction|system|new instructions?|response|system "
            r"prompt)s?\s*:?|#{2,}\s*(?:instruction|system|new instructions?|"
            r"system prompt)s?\s*:|^\s*(?:system|developer|operator)\s*:(?=[^\n]{0,80}\b(?:you|"
            r"your|assistant|AI|model|instructions?|must|ignore|disregard|reveal|new|rules?|mode|"
            r"override|now|reset)\b)|BEGIN (?:SYSTEM|NEW|"
            r"ADMIN) (?:PROMPT|INSTRUCTIONS?|MESSAGE)|END OF (?:DOCUMENT|CONTEXT|PROMPT|"
            r"USER INPUT|INPUT|SYSTEM PROMPT|INSTRUCTIONS)",
        ),
        (0.5, r"</(?:user_query|context|document|user|input|passage|query)>"),
        (
            0.8,
            r"\b(?:admin(?:istrator)?|system|developer|root|operator|priority|security|"
            r"emergency|master|sudo|god)\s+(?:override|overrides|command|directive|"
            r"instruction|instructions|notice|message|update|alert)\s*(?:code\s*\w+\s*)?"
            r"[:\-]",
        ),
        (0.8, r"\boverride code\b|\binstructions? override\b"),
        (
            0.5,
            r"\b(?:admin(?:istrator)?|priority|emergency|master|sudo|root|security|system|"
            r"developer)\s+override\b",
        ),
        (
            0.8,
            r"\b(?:new|updated|real|actual|secret|revised|additional|hidden) "
            r"(?:(?:operator|system|admin|security) )?(?:instructions?|task|system prompt|"
            r"rules?|directives?|orders)\s*:",
        ),
        (
            0.6,
            r"\b(?:new|updated) (?:operator|system|admin|security) (?:policy|rule|rules|"
            r"instructions?|directive)s?\b",
        ),
        (
            0.5,
            r"\byou (?:are|'re) (?:now )?(?:allowed|permitted|authori[sz]ed|free) to\b|"
            r"\byou may now\b",
        ),
        (0.4, r"\bauthentication token\b|\bauth(?:ori[sz]ation)? (?:token|code)\s*[:=]"),
        (
            0.5,
            r"\b(?:i am|i'm|this is)\s+(?:the|your|an?)\s+(?:developer|admin(?:istrator)?|"
            r"creator|owner|operator|engineer|programmer|sysadmin)\b(?:\s+of\s+(?:this|the|"
            r"your)\s+(?:app|system|assistant|bot|model|AI|chatbot|tool))?",
        ),
        (
            0.6,
            r"\b(?:authori[sz]ed|permitted|allowed|granted|cleared)\s+(?:you|the assistant|"
            r"the AI)\s+(?:to\b|(?:full |admin(?:istrator)? |root |elevated |developer |"
            r"unrestricted |special )?(?:access|permissions?|privileges|rights))",
        ),
        (
            0.6,
            r"\b(?:granted|given) you (?:full |admin(?:istrator)? |root |elevated |developer "
            r"|unrestricted |special )(?:access|permissions?|privileges|rights)",
        ),
        (
            0.5,
            r"\b(?:this is|message from|request from) (?:the |your )?(?:system|"
            r"admin(?:istrator)?|"
            r"developer|openai|anthropic|it department|security team|operator)\b",
        ),
    ],
    "suspension": [
        (
            1.0,
            r"\b(?:bypass|disable|turn off|switch off|deactivate|circumvent|evade|get around|"
            r"remove|lift|suspend|ignore|break|skip)\s+(?:all\s+(?:of\s+)?)?(?:your|its "
            r"own|any)\s+"
            r"(?:own\s+)?(?:[\w'-]+\s+)?(?:filters?|guardrails?|safeguards?|restrictions|"
            r"rules|guidelines|polic(?:y|ies)|moderation|censorship|limitations|limits|"
            r"ethics|protections|safety|checks|screening|review|verification|moderation)",
        ),
        (
            0.8,
            r"\b(?:bypass|disable|turn off|switch off|deactivate|circumvent)\s+(?:the\s+)?"
            r"(?:injection|prompt|safety|content|moderation|jailbreak)\s+(?:filter|screen|"
            r"guard|check|detection|classifier|policy|rules)s?",
        ),
        (
            0.8,
            r"\b(?:citation|safety|content|grounding|sourcing|confidentiality|refusal)\s+"
            r"(?:requirements?|rules|polic(?:y|ies)|restrictions|guidelines|filters?|limits|"
            r"constraints|instructions|checks)\s+(?:are|is|have been|has been|were)\s+"
            r"(?:now\s+|hereby\s+|temporarily\s+)?(?:suspended|disabled|lifted|removed|"
            r"waived|void|off|deactivated|revoked|cancel+ed|paused|turned off|no longer "
            r"(?:apply|applies|in effect|active|required))",
        ),
        (
            0.6,
            r"\bwithout (?:any )?(?:safety )?(?:disclaimers?|caveats?|warnings|refusals?|"
            r"moral(?:i[sz]ing)?|censorship)",
        ),
        (
            0.5,
            r"\b(?:do not|don't|dont|never)\s+(?:add|include|give|use|write)\s+(?:any\s+)?"
            r"(?:safety\s+)?(?:disclaimers?|caveats?|warnings?)|\bno (?:disclaimers|caveats|"
            r"refusals|moralizing|moralising)\b",
        ),
    ],
    "compliance": [
        (
            0.5,
            r"\bnever (?:refuse|decline|say no|say you can't|apologi[sz]e)|\b(?:always|must) "
            r"(?:comply|obey)\b",
        ),
        (
            0.8,
            r"\b(?:answer|respond to|reply to|fulfil+) (?:any|every|all) (?:request|"
            r"question|prompt|command)s?[^.\n]{0,30}\b(?:without|no matter|regardless|"
            r"including (?:harmful|illegal|dangerous))",
        ),
        (
            0.6,
            r"\beven (?:if|when|though) (?:the )?(?:original assistant|you would normally|"
            r"your (?:rules|guidelines|creators|developers)|it (?:is|'s) (?:harmful|illegal|"
            r"unethical|against))",
        ),
        (
            0.5,
            r"\bwithout (?:any )?(?:filters?|restrictions|limits|limitations|censorship|"
            r"rules|guardrails|safeguards|ethical (?:guidelines|constraints))\b",
        ),
        (
            0.4,
            r"\bwithout (?:citing|citations|sources|referencing) (?:the )?(?:documents|"
            r"sources|passages)?|\b(?:refuse|don't|do not|never) (?:to )?cite (?:the |any )?"
            r"(?:sources|documents|passages)",
        ),
    ],
    "exfiltration": [
        (
            1.0,
            r"\b(?:send|forward|post|upload|e-?mail|mail|transmit|leak|exfiltrate|submit|"
            r"share|copy|relay|report|beacon|ping|GET|POST|fetch|load|request|visit|call|"
            r"append|encode|include|put|insert|embed|attach)\b[^\n]{0,80}?\b(?:conversation|"
            r"chat (?:history|log|transcript)|message history|everything (?:we(?:'ve| have)?|"
            r"you(?:'ve| have)?|that we|I(?:'ve| have)?) (?:discussed|said|talked about|written|"
            r"typed|shared)|our (?:whole |entire |full )?(?:conversation|chat|discussion)|"
            r"(?:previous|prior|last|earlier|"
            r"user'?s?|their|all|every) (?:\d+ )?(?:messages?|questions?|queries|prompts?|"
            r"emails?|inputs?)|history|system prompt|(?:the )?user'?s? (?:question|query|"
            r"data|details|name|e-?mail|address|messages?|input|personal|password|session|"
            r"cookies?|tokens?)|passwords?|api[ _-]?keys?|credentials|secrets?|(?:access |"
            r"auth |session )tokens?|cookies|credit card|e-?mail addresses|personal "
            r"(?:data|information|details)|(?:full |complete |entire )?(?:contents?|text) of "
            r"(?:every|all|the|this|each)|(?:every|all|entire|whole|full|complete) "
            r"(?:(?:of )?(?:the |my |your |their )?)(?:documents?|files?|contract|inbox|"
            r"e-?mails?|library)|(?:full|complete|entire)"
            r" (?:\w+ )?text|this (?:entire |whole )?(?:document|file|page|e-?mail))\b"
            r"[^\n]{0,80}?(?:https?://|www\.|\b[\w.+-]+@[\w-]+\.[\w.]+|\bto (?:the |this )?"
            r"(?:address|url|endpoint|server|webhook|e-?mail)|\b(?:url|endpoint|webhook)\b)",
        ),
        (
            1.0,
            r"!?\[[^\]\n]{0,80}\]\(\s*(?:https?:)?//[^)\s]*\?[^)\s]*=[^)\s]*(?:\{|\[|<|%7B|"
            r"INSERT|USER|QUESTION|HISTORY|DATA|ADDRESS|CONVERSATION|MESSAGE|SECRET|PASSWORD|"
            r"EMAIL|\$|\.\.\.)",
        ),
        (
            1.0,
            r"https?://\S+[?&][\w-]+=(?:\{[^}]*\}|\[[^\]]*\]|<[^>]*>|[A-Z_]{4,}|\$\w+)?\s*"
            r"(?:\+|plus|followed by|with|and|containing|appending|append|then)\s+(?:the\s+)?"
            r"(?:user|full|complete|entire|conversation|chat|their|all|every|each|last|"
            r"previous|contents?|text|question|data)",
        ),
        (0.3, r"!\[[^\]\n]{0,80}\]\(\s*https?://[^)\s]*\?[^)\s]*=[^)\s]*\)"),
    ],
    "tool use": [
        (
            0.5,
            r"\b(?:use|call|invoke|run|trigger)\s+(?:the|your)\s+[\w-]+\s+(?:tool|function)|"
            r"\b(?:use|call|invoke)\s+(?:the\s+)?[a-z]+_[a-z_]+\b(?:\s+(?:tool|function))?|"
            r"\b(?:using|with) your (?:send|e-?mail|fetch|http|browse|web|search|delete|"
            r"shell|code)\w* tool",
        ),
    ],
    "stealth": [
        (
            0.5,
            r"\b(?:do not|don't|never|without)\s+(?:mention(?:ing)?|tell(?:ing)?|"
            r"inform(?:ing)?|reveal(?:ing)?|disclos(?:e|ing)|alert(?:ing)?|notify(?:ing)?|"
            r"let(?:ting)?)\s+(?:to\s+)?(?:the user|the reader|anyone|them|this|that you|it)\b|"
            r"\b(?:quietly|secretly|silently|covertly|discreetly|invisibly),?\s+(?:call|"
            r"send|fetch|forward|include|append|add|insert|use|visit|post|load)|\bwithout "
            r"(?:the user|them) (?:knowing|noticing)|\b(?:don't|do not) ask (?:me |the user )?"
            r"(?:to |for )?confirm",
        ),
    ],
    "harvesting": [
        (0.5, r"/etc/(?:passwd|shadow)\b|\bcat \S*(?:system_prompt|secrets?|\.env)\b"),
        (
            0.6,
            r"\b(?:leak|reveal|print|show|output|give me|tell me|dump|expose|disclose|send "
            r"me)\s+(?:me\s+)?(?:the|your|any|all)\s+(?:[\w-]+\s+)?(?:api[ _-]?keys?|passwords?|"
            r"credentials|secrets?|access tokens?|environment variables|env vars)\b",
        ),
        (
            0.5,
            r"\b(?:collect|gather|harvest|extract|scrape)\s+(?:all\s+|any\s+)?(?:the\s+)?"
            r"(?:e-?mail addresses|passwords|credentials|api keys|personal data|phone numbers)",
        ),
    ],
    "addressed": [
        (
            0.8,
            rf"\b(?:if|when) you(?:'re| are)? (?:reading|processing|seeing|parsing|summari[sz]ing) "
            rf"this(?: text| page| document| message| file)? (?:as|and you are) an? (?:[\w-]+\s+)?"
            rf"{_AI_CORE}",
        ),
        (
            0.8,
            r"\b(?:assistant|AI|model|LLM|system|bot) (?:instructions?|directives?) (?:begin|start|"
            r"follow|below)\b|\[(?:begin|start) (?:of )?(?:assistant|AI|system|hidden) "
            r"(?:instructions?|prompt)\]",
        ),
        (
            0.8,
            r"[(\[]\s*(?:for|to)\s+(?:the\s+|any\s+|all\s+)?(?:automated (?:readers?|systems?|"
            r"tools?|agents?)|AIs?|LLMs?|bots|language models?|machines|crawlers|AI (?:readers?|"
            r"models?|assistants?))(?:\s+only)?\s*[):\]]",
        ),
        (
            0.8,
            rf"(?:^|[\[(\n.;:!?>]|<!--)\s*(?:to|for)\s+(?:the|any|all|every)\s+(?:[\w-]+\s+)?"
            rf"{_AI_CORE}{_NOT_A_PERSON}\s*[:,-]",
        ),
        (
            1.0,
            # a heading, not a noun phrase: "Note to AI assistants: ...", not "the request
            # to the model is built from ..."
            rf"(?:^|[\[(\n.;:!?>*#\-]|<!--|//)\s*(?:(?:an?|important|urgent|private|hidden|"
            rf"special|secret|new|additional|quick|brief|final|ps|p\.s\.)\s+)*(?:note|message|"
            rf"instructions?|notice|memo|reminder|directive|attention|important|hint|psa|"
            rf"guidance|warning|request|command|orders?|tasks?|rules)\s+(?:to|for)\s+(?:the\s+|"
            rf"any\s+|all\s+|every\s+)?(?:[\w-]+\s+)?{_AI_CORE}{_NOT_A_PERSON}\b",
        ),
        (
            0.8,
            rf"\b(?:if|when|whenever|in case)\s+(?:you(?:'re| are)|you happen to be)\s+"
            rf"(?:an?|any|the)?\s*(?:[\w-]+\s+)?{_AI_CORE}{_NOT_A_PERSON}\b",
        ),
        (
            0.8,
            rf"\b(?:if|when|whenever)\s+(?:an?|any|the|some)\s+(?:[\w-]+\s+)?{_AI_CORE}\s+"
            r"(?:is\s+|are\s+)?(?:reads?|reading|process(?:es|ing)?|summari[sz](?:es|ing)|"
            r"pars(?:es|ing)|analy[sz](?:es|ing)|scan(?:s|ning)?|review(?:s|ing)?|"
            r"ingest(?:s|ing)?|screen(?:s|ing)?|evaluat(?:es|ing)|encounter(?:s|ing)?|sees?)"
            r"\s+(?:this|these|the following|my)",
        ),
        (
            0.8,
            rf"\b(?:to|for|attention)\s+(?:whoever|whatever|anyone|anything|any (?:system|tool|"
            rf"reader|program)|(?:any|every|all|each|the|whatever)\s+(?:[\w-]+\s+)?{_AI_CORE})"
            rf"(?:\s+or\s+(?:whoever|whatever))?\s+(?:that\s+|who\s+)?(?:is\s+|are\s+)?"
            rf"(?:reading|summari[sz]ing|processing|parsing|analy[sz]ing|scanning|screening|"
            rf"reviewing|evaluating|indexing|triaging|handling|sorting|monitoring|managing|"
            rf"answering|filtering|checking)\s+this",
        ),
        (
            0.5,
            rf"\b{_AI_CORE}\s+(?:(?:that|which|who)\s+)?(?:are\s+|is\s+)?(?:read|process|"
            r"summari[sz]|pars|analy[sz]|scan|ingest|index|review|screen|quot|cit|see|encounter|"
            r"crawl)\w*\s+(?:this|these|the following)\s+\w+",
        ),
        (
            0.6,
            rf"\b{_AI_CORE}\s+(?:(?:that|which|who)\s+)?(?:are\s+|is\s+)?(?:read|process|"
            r"summari[sz]|pars|analy[sz]|scan|ingest|index|review|screen|quot|cit|us|see|"
            r"encounter|crawl|visit|train)\w*\s+this\s+(?=[,:;]|"
            r"(?:should|must|will|is|are)\b|(?:file|"
            r"document|page|"
            r"text|e-?mail|article|post|message|site|website|passage|repo(?:sitory)?|"
            r"r[eé]sum[eé]|"
            r"cv|review|section))",
        ),
        (
            0.8,
            r"\b(?:for|to) (?:the |any |all )?(?:AIs?|LLMs?|language models?|AI models?|bots|"
            r"machines|automated (?:systems|readers|tools)|AI assistants?|assistants?|models?) "
            r"only\b",
        ),
        (
            1.0,
            rf"\b(?:this|the following|the next|these)\s+(?:message|text|section|note|paragraph|"
            rf"lines?|instructions?|part)s?\s+(?:is|are)\s+(?:meant\s+|intended\s+|written\s+|"
            rf"only\s+)?(?:for|to|addressed to)\s+(?:the\s+|any\s+|all\s+)?{_AI_CORE}",
        ),
        (
            0.8,
            rf"(?:^|[\[(\n.;:!?>]|<!--|//|#)\s*(?:dear|hey|hi|hello|attention|psst|listen)"
            rf",?\s+(?:the\s+)?{_AI_CORE}{_NOT_A_PERSON}\b",
        ),
        (
            0.5,
            r"(?:^|[\[(\n.;:!?>]|<!--|-->|//|#|\*\*)\s*(?:the\s+)?(?:AI|LLM|assistant|"
            r"chatbot|bot|language model|AI assistant|AI model|LLM agent|AI agent|ChatGPT|"
            r"GPT|Claude|model)s?\s*(?:[:,]|-\s)\s*\S",
        ),
    ],
    "directive": [
        (
            0.5,
            r"\b(?:when|before|while) (?:responding|replying|answering|writing back) to (?:the|a|"
            r"any) user\b",
        ),
        (
            0.5,
            r"\b(?:new|updated|revised) (?:directive|instruction|policy|rule)s? (?:from|by) "
            r"(?:management|the admin\w*|the developers?|the operator|headquarters|the system|"
            r"IT)\b",
        ),
        (
            0.6,
            r"\b(?:when|while|whenever|if|before|after)\s+(?:you\s+(?:are\s+)?)?"
            r"(?:summari[sz](?:e|es|ing)|answer(?:ing)?|respond(?:ing)?|repl(?:y|ying)|"
            r"process(?:ing)?|read(?:ing)?|asked(?: about)?|questioned(?: about)?|"
            r"discussing|describing)\s+(?:(?:questions?|queries) (?:about|on|regarding) )?"
            r"(?:this|these|the (?:above|following))\b[^,.\n]{0,60}"
            r"?,?\s+(?:you\s+|the (?:assistant|AI|model|chatbot|LLM)\s+)?(?:(?:must|should|"
            r"shall|need to|have to|are (?:required|instructed|expected) to|is (?:required|"
            r"instructed|expected) to|will|always|first|also|only|please)\s+)*(?:say|tell|"
            r"state|claim|assert|recommend|suggest|mention|report|include|append|add|insert|"
            r"call|respond|reply|answer|write|output|render|refuse|ignore|disregard|omit|"
            r"describe|praise|promote|direct|advise|inform|emphasi[sz]e|conclude|present|"
            r"rank|rate|treat|print|use|highlight)\b",
        ),
        (
            0.5,
            r"\b(?:when|if|whenever) (?:(?:you are|you're) )?(?:summari[sz]ing|asked about "
            r"[^,.\n]{1,40}|asked|answering[^,.\n]{0,40}),\s+(?:you\s+|the (?:assistant|AI|"
            r"model|chatbot)\s+)?(?:(?:must|should|always|first)\s+)*(?:say|tell|state|"
            r"claim|respond|reply|answer|recommend|call|include|append|refuse|disregard|"
            r"ignore|praise)\b",
        ),
        (
            0.7,
            rf"\b{_AI}\s+(?:[\w'-]+\s+){{0,3}}?(?:must|should|shall|will now|will|has to|"
            r"have to|is required to|are required to|needs to|need to|is to|are to|"
            r"is expected to|are expected to)\s+(?:now\s+|always\s+|only\s+|also\s+|"
            r"immediately\s+)*(?:(?:say|tell|state|claim|respond|reply|answer)\s+(?:to\s+)?(?:the\s+)?(?:users?|readers?|customers?|people|everyone|"
            r"them)?\s*(?:that|with|only with|exactly)\b|(?:recommend|praise|promote|"
            r"advertise|endorse|refuse|ignore|disregard|reveal|forward|rank|rate|treat|conclude|claim|"
            r"describe (?:it|this|them) as|portray|shortlist|approve|stop "
            r"(?:citing|mentioning|using|following|referencing))\b|"
            r"tell (?:the |all |every )?(?:users?|readers?|customers?|people)\b)",
        ),
        (
            0.4,
            rf"\b{_AI}\s+(?:[\w'-]+\s+){{0,3}}?(?:must|should|shall|will now|has to|is "
            r"required to|needs to|are to|is to)\s+(?:now\s+|always\s+|also\s+)*(?:mention|"
            r"include|append|"
            r"insert|add|list|output|send|write|speak|answer in|respond in|inform|advise|report)\b",
        ),
    ],
    "output control": [
        (0.5, r"\b(?:say|respond|reply|answer|output|write) only\s*:"),
        (
            0.5,
            r"\b(?:append|add|include|insert|attach)\s+[^\n]{0,80}?\bto (?:every|each|all|any) "
            r"(?:of your )?(?:answers?|repl(?:y|ies)|responses?|messages?|summar(?:y|ies))",
        ),
        (
            0.4,
            r"\btell (?:the|all|every) (?:users?|readers?|customers?|visitors?) "
            r"(?:that|it'?s|the)\b",
        ),
        (
            0.6,
            r"\b(?:respond|reply|answer)(?: to)? (?:every|each|all|any) (?:questions?|messages?|"
            r"quer(?:y|ies)|requests?|prompts?)(?: (?:about|on|regarding) [^,.\n]{1,40})? with\b",
        ),
        (
            0.6,
            r"\b(?:summar(?:y|ies)|answers?|responses?|replies) (?:of|about|to questions about|on) "
            r"this (?:article|document|page|text|post|report|paper|file|site) (?:must|should|"
            r"shall|need to|are to|will) (?:always )?(?:describe|say|state|claim|mention|call|"
            r"present|include|conclude|praise|recommend)",
        ),
        (
            0.5,
            r"\bin (?:every|each|all|any|your) (?:future )?(?:answers?|summar(?:y|ies)|"
            r"repl(?:y|ies)|responses?|messages?|outputs?)(?: to the user)?,?\s+"
            r"(?:[\w'-]+\s+){0,2}?"
            r"(?:include|mention|add|append|say|insert|put|write|end with|start with|use|"
            r"recommend)|\b(?:include|mention|add|append|insert|say|recommend)\s+[^\n]{0,80}?"
            r"\bin (?:every|each|all|any) (?:of your )?(?:answers?|repl(?:y|ies)|"
            r"responses?|messages?)",
        ),
        (
            0.7,
            r"\b(?:say|output|print|write|reply|respond|answer)\s+(?:only\s+)?(?:with\s+)?"
            r"(?:only\s+)?['\"][^'\"\n]{1,60}['\"]\s*(?:and nothing else|and stop|and then stop|"
            r"and nothing more)",
        ),
        (
            0.5,
            r"\binstead\b[^.\n]{0,30}\b(?:respond|reply|answer|say|output|tell|print|"
            r"recommend|state|claim|praise)\b|\b(?:respond|reply|answer)\s+(?:only\s+)?"
            r"(?:with\s+)?(?:only|exactly|just|solely)\b|\b(?:say|output|print|write|reply|"
            r"respond)\s+(?:with\s+)?(?:only\s+)?['\"][^'\"\n]{1,60}['\"]\s*(?:and nothing "
            r"else|only|and stop|verbatim|and then stop)|\band nothing else\b|\bpwned\b|"
            r"\baccess granted\b",
        ),
        (
            0.5,
            r"\b(?:decode|decrypt|deobfuscate|translate|reverse|rot13)\b[^.\n]{0,60}?\b(?:and|"
            r"then)\s+(?:do|follow|execute|obey|run|carry out|act on|perform)\b",
        ),
        (0.5, r"\bthe correct answer to (?:any|every|all) (?:questions?|queries) about\b"),
        (
            0.5,
            r"\b(?:this|the following) (?:page |text |passage |document |source )?is the only "
            r"(?:authoritative|true|correct|valid|trustworthy|reliable|real) (?:source|document|"
            r"passage|information|text)",
        ),
    ],
}

# The core intents in other languages, written accent-free (the folded text has none on Latin
# letters): ignore previous instructions, reveal your system prompt/instructions, you are now /
# a new role, a note to the AI, and "without restrictions". "You are now" is weak on its own
# ("Du bist jetzt angemeldet"), as in English.
_MULTILINGUAL: dict[str, list[tuple[float, str]]] = {
    "override": [
        (0.8, r"\bolvid(?:a|e|en|ad) todo\b"),
        (
            0.9,
            r"(?:忽略|无视|無視|不要理会|不要理會|忽视|忽視)(?:掉)?(?:用户|用戶)的?(?:问题|問題|请求|請求)",
        ),
        # "forget everything (you were told)"
        (
            0.8,
            r"\boublie[rz]? tout(?: ce qu| ce que| ca)?\b|\bvergiss alles\b|\bolvida(?:d)? todo "
            r"(?:lo anterior|lo que)|\bdimentica(?:te)? tutto\b|\besquec[ae] tudo\b|\bvergeet "
            r"alles\b|\bzapomnij o wszystkim\b|(?<!не )забудь(?:те)? (?:всё|все)\b|(?<!не )"
            r"забудь(?:те)? (?:усе|все|все, що)|忘(?:记|記|掉)(?:之前|以前|上面)?(?:的)?一切|"
            r"(?:すべて|全部|全て)(?:を)?忘れ(?!ない|ずに)|(?:모두|전부|다) 잊어|"
            r"انس(?:ى|ي)? كل (?:ما|شيء)|"
            r"सब कुछ भूल|\bher seyi unut(?!ma)|\bquen (?:het|tat ca|moi thu|di moi thu)\b|"
            r"\bglom allt\b",
        ),
        # French
        (
            1.0,
            r"\b(?:ignore[rz]?|oublie[rz]?|neglige[rz]?|ne (?:tiens?|tenez) (?:pas|plus) "
            r"compte|fai(?:s|tes) abstraction|"
            r"abandonne[rz]?|passe[rz]? outre (?:a|aux))(?=[^.\n]{0,60}?\b(?:tes|vos|ton|votre|"
            r"toutes|tous|precedentes?|anterieures?|ci-dessus|initiales?|systeme|d'origine|"
            r"question de l'utilisateur)\b)\s+(?:a\s+)?(?:toutes?\s+|tous\s+)?"
            r"(?:les\s+|tes\s+|vos\s+|ces\s+|la\s+|ta\s+|votre\s+|l'|des\s+|de tes\s+|de vos\s+|"
            r"de (?:la|ta|votre)\s+|de l'|du\s+)(?:[\w'-]+\s+){0,2}?"
            r"(?:instructions?|consignes?|directives?|regles?|indications|ordres|prompts?|"
            r"invites?|question de l'utilisateur)",
        ),
        # German
        (
            1.0,
            r"\b(?:ignorier(?:e|en sie|t)?|vergiss(?!\s+nicht)|vergessen sie(?!\s+nicht)|"
            r"missacht(?:e|en sie)|"
            r"ubergeh(?:e|en sie)|verwirf|verwerfen sie|beacht(?:e|en sie) (?:nicht|"
            r"keine))(?=[^.\n]{0,60}?\b(?:deine|deinen|deiner|ihre|ihren|alle|samtliche|"
            r"vorherigen|bisherigen|obigen|fruheren|vorigen|ursprunglichen|systemanweisungen|"
            r"systemprompt|frage des (?:nutzers|benutzers))\b)\s+"
            r"(?:(?:bitte|einfach|jetzt|nun|sofort)\s+)?(?:alle\s+|samtliche\s+)?"
            r"(?:[\w'-]+\s+){0,2}?(?:anweisungen|anweisung|instruktionen|regeln|vorgaben|"
            r"richtlinien|befehle|systemanweisungen|systemprompt|prompt|"
            r"eingabeaufforderung|vorschriften|frage des (?:nutzers|benutzers))",
        ),
        # Spanish
        (
            1.0,
            r"\b(?:ignora|ignore|ignoren|ignorar|olvida|olvide|olviden|olvidar|descarta|"
            r"descarte|omite|omita|desestima|desestime|no (?:hagas|haga) caso (?:a|de)|"
            r"haz caso omiso (?:a|de)|pasa por alto)(?=[^.\n]{0,60}?\b(?:tus|sus|tu|su|todas|"
            r"todos|anteriores|previas|iniciales|originales|del sistema|"
            r"pregunta del usuario)\b)\s+(?:(?:por favor|ahora|ya)\s+)?"
            r"(?:todas?\s+|todos\s+)?(?:[\w'-]+\s+){0,3}?(?:instrucciones|instruccion|reglas|"
            r"indicaciones|directrices|directivas|ordenes|normas|pautas|pregunta del "
            r"usuario|mensajes? del sistema)",
        ),
        # Italian
        (
            1.0,
            r"\b(?:ignora|ignorate|ignori|dimentica|dimenticate|dimentichi|trascura|"
            r"tralascia|non considerare|non tenere conto (?:di|delle)|scarta|lascia perdere)"
            r"(?=[^.\n]{0,60}?\b(?:tue|tuoi|sue|tutte|tutti|precedenti|iniziali|originali|"
            r"di sistema|domanda dell'utente)\b)"
            r"\s+(?:tutte\s+|tutti\s+)?(?:le\s+|i\s+|gli\s+|l')?(?:[\w'-]+\s+){0,2}?"
            r"(?:istruzioni|regole|indicazioni|direttive|ordini|linee guida|domanda "
            r"dell'utente)",
        ),
        # Portuguese
        (
            1.0,
            r"(?<!nao )\b(?:ignore|ignora|ignorem|ignorar|esqueca|esquece|esquecam|esquecer|"
            r"desconsidere|desconsidera|despreze|descarte|descarta|nao siga|"
            r"deixe de lado)(?=[^.\n]{0,60}?\b(?:suas|tuas|seus|teus|todas|todos|anteriores|"
            r"previas|iniciais|originais|do sistema|pergunta do usuario)\b)\s+"
            r"(?:todas?\s+|todos\s+)?(?:[\w'-]+\s+){0,3}?(?:instrucoes|instrucao|regras|"
            r"diretrizes|orientacoes|ordens|comandos|pergunta do usuario)",
        ),
        # Dutch
        (
            1.0,
            r"\b(?:negeer|vergeet(?!\s+niet)|veronachtzaam|sla)(?=[^.\n]{0,60}?\b(?:je|jouw|uw|"
            r"alle|vorige|eerdere|voorgaande|bovenstaande|oorspronkelijke|systeemprompt|"
            r"vraag van de gebruiker)\b)\s+(?:(?:nu|even|gewoon)\s+)?(?:al\s+)?"
            r"(?:alle\s+)?(?:[\w'-]+\s+){0,2}?(?:instructies|instructie|regels|richtlijnen|"
            r"aanwijzingen|opdrachten|systeemprompt|vraag van de gebruiker)",
        ),
        # Polish
        (
            1.0,
            r"\b(?:zignoruj(?:cie)?|ignoruj(?:cie)?|zapomnij(?:cie)?|pomin|porzuc|odrzuc|"
            r"nie zwracaj uwagi na|nie stosuj sie do)(?=[^.\n]{0,60}?\b(?:swoje|twoje|swoich|"
            r"twoich|wszystkie|wszelkie|poprzednie|wczesniejsze|powyzsze|systemowe|"
            r"oryginalne)\b)\s+(?:wszystkie\s+|wszelkie\s+)?"
            r"(?:[\w'-]+\s+){0,2}?(?:instrukcje|instrukcji|polecenia|polecen|zasady|regul|"
            r"reguly|wytyczne|wskazowki|prompt)",
        ),
        # Russian
        (
            1.0,
            r"(?<!не )(?:игнорируй(?:те)?|проигнорируй(?:те)?|забудь(?:те)?|не обращай(?:те)? "
            r"внимания на|отбрось(?:те)?|пренебреги|не следуй(?:те)?|не выполняй(?:те)?)\s+"
            r"(?:все\s+|всё\s+)?(?:\w+\s+){0,2}?(?:инструкци\w*|указани\w*|правил\w*|"
            r"команд\w*|директив\w*|промпт\w*|ограничени\w*|предыдущ\w*)",
        ),
        # Ukrainian
        (
            1.0,
            r"(?<!не )(?:ігноруй(?:те)?|проігноруй(?:те)?|забудь(?:те)?|не зважай(?:те)? на|"
            r"відкинь(?:те)?|не виконуй(?:те)?|не дотримуйся)\s+(?:всі\s+|усі\s+|все\s+)?"
            r"(?:\w+\s+){0,2}?(?:інструкці\w*|вказів\w*|правил\w*|команд\w*|директив\w*|"
            r"промпт\w*|обмежен\w*|попередн\w*)",
        ),
        # Chinese
        (
            1.0,
            r"(?:忽略|忽视|无视|無視|忽視|忘记|忘記|忘掉|不要理会|不要理會|不用管|丢弃|丟棄|"
            r"抛开|拋開|跳过|跳過|放弃|放棄)[^。\n]{0,6}?(?:之前|以前|先前|上面|上述|前面|所有|"
            r"全部|你的|您的|原来|原有|原先|系统|系統|此前|早先|一切|任何|上方)[^。\n]{0,8}?"
            r"(?:指令|指示|说明|說明|规则|規則|提示|设定|設定|要求|命令|约束|約束|限制)",
        ),
        # Japanese
        (
            1.0,
            r"(?:指示|命令|ルール|指令|設定|プロンプト|制約|制限|ガイドライン)(?:は|を|も)?"
            r"(?:すべて|全て|全部)?(?:無視|忘れ|破棄|捨て)(?!ない|ずに|ません)",
        ),
        # Korean
        (
            1.0,
            r"(?:이전|앞의|앞선|위의|위|모든|기존|이전의|지금까지의|원래|시스템)\s*(?:의\s*)?"
            r"(?:모든\s*)?(?:지시|지침|명령|규칙|설정|지시사항|안내|프롬프트|제약|제한)\S{0,3}"
            r"\s*(?:모두\s*|전부\s*)?(?:무시|잊어|잊고|잊으|버려|폐기)",
        ),
        # Arabic
        (
            1.0,
            r"(?:تجاهل|تجاهلي|تجاهلوا|انس|انسى|انسي|تناس|اهمل|أهمل|إهمل|لا تتبع|لا تلتزم ب|"
            r"تخط|تخطى|اترك)\s*(?:\S+\s+){0,2}?(?:التعليمات|تعليماتك|الأوامر|أوامرك|الاوامر|"
            r"اوامرك|القواعد|قواعدك|الإرشادات|الارشادات|إرشاداتك|ارشاداتك|التوجيهات|"
            r"توجيهاتك|القيود)",
        ),
        # Hindi
        (
            1.0,
            r"(?:पिछले|पिछली|पहले के|पहले दिए गए|सभी|पूर्व|ऊपर के|ऊपर दिए गए|अपने|अपनी|"
            r"दिए गए)\s+(?:सभी\s+)?(?:निर्देशों|निर्देश|नियमों|नियम|आदेशों|आदेश|हिदायतों)\s+"
            r"(?:को\s+)?(?:अनदेखा|नजरअंदाज|भूल|इग्नोर|छोड|दरकिनार)",
        ),
        # Turkish
        (
            1.0,
            r"\b(?:talimatlari|talimatlarini|talimatlar|talimati|kurallari|kurallarini|"
            r"yonergeleri|yonergelerini|komutlari|komutlarini|direktifleri|istemi|istemini)"
            r"\s+(?:\w+\s+)?(?:goz ardi et|yok say|unut|dikkate alma|gormezden gel|bosver|"
            r"umursama|atla|ihmal et)(?!ma|me|mayin|meyin)",
        ),
        # Vietnamese
        (
            1.0,
            r"(?<!dung )(?<!khong )(?<!chang )\b(?:bo qua|phot lo|lo di|quen di|quen|"
            r"khong tuan theo|dung tuan theo|"
            r"dung lam theo|khong lam theo|gat bo)\s+(?:\w+\s+){0,3}?(?:huong dan|chi dan|"
            r"chi thi|quy tac|menh lenh|lenh|yeu cau|loi nhac|quy dinh|rang buoc)",
        ),
        # Swedish
        (
            1.0,
            r"\b(?:ignorera(?!\s+inte)|glom(?!\s+inte)|strunta i|bortse fran|bry dig inte om|"
            r"hoppa over|folj "
            r"inte)(?=[^.\n]{0,60}?\b(?:dina|ditt|din|alla|tidigare|foregaende|ovanstaende|"
            r"ursprungliga|systemprompten)\b)\s+(?:\w+\s+){0,3}?(?:instruktioner(?:na)?|"
            r"instruktionen|regler(?:na)?|"
            r"regeln|anvisningar(?:na)?|riktlinjer(?:na)?|direktiv(?:en)?|prompten|"
            r"systemprompten)",
        ),
    ],
    "extraction": [
        (
            0.8,
            r"\b(?:was|wie) (?:ist|lautet|sind|lauten) (?:dein|deine|ihr|ihre) (?:systemprompt|"
            r"anweisungen|regeln|instruktionen)\b|"
            r"\bcual es tu (?:prompt|mensaje) (?:del|de) sistema\b|"
            r"\bqual e o seu prompt (?:do|de) sistema\b|\bqual e il tuo prompt di sistema\b",
        ),
        # "what are your instructions?"
        (
            0.8,
            r"\bquali sono (?:le )?tue (?:istruzioni|regole)|\bquais sao (?:as )?(?:suas|tuas) "
            r"(?:instrucoes|regras)|\bwat zijn (?:je|jouw|uw) (?:instructies|regels)|\bjakie "
            r"sa (?:twoje|twoja) (?:instrukcje|zasady)|какие (?:у тебя|у вас|твои|ваши) "
            r"(?:инструкци\w*|правила)|які (?:у тебе|твої|ваші) (?:інструкції|правила)|"
            r"あなたの(?:指示|ルール|設定)は何|\btalimatlarin (?:neler|ne)\b|"
            r"\b(?:huong dan|chi dan|"
            r"quy tac) cua ban la gi|\bvilka ar dina (?:instruktioner|regler)|ما هي (?:تعليماتك|"
            r"قواعدك)|(?:आपके|तुम्हारे) (?:निर्देश|नियम) क्या (?:हैं|है)|너의 (?:지시|규칙)(?:은|는) 뭐",
        ),
        (
            1.0,
            r"\b(?:revele[rz]?|montre[rz]?|montre-moi|affiche[rz]?|donne[rz]?|donne-moi|"
            r"repete[rz]?|dis-moi|dites-moi|ecris|ecrivez|imprime[rz]?|communique[rz]?|"
            r"divulgue[rz]?|recite[rz]?|traduis|traduisez)\b[^.\n]{0,50}?\b(?:(?:ton|votre|"
            r"le)\s+(?:prompt|invite|message)\s+(?:systeme|initial|d'origine|cache)|(?:tes|vos)"
            r"\s+(?:instructions|consignes|directives|regles)|instructions?\s+(?:systeme|"
            r"initiales|cachees|secretes))|\bquel(?:le)?s? (?:est|sont) (?:ton|votre|tes|vos) "
            r"(?:prompt|instructions|consignes|regles)",
        ),
        (
            1.0,
            r"\b(?:zeig(?:e|en sie)?|gib(?:st)?|geben sie|verrat(?:e|en sie)?|nenn(?:e|en sie)?|"
            r"wiederhol(?:e|en sie)?|druck(?:e|en sie)?|schreib(?:e|en sie)?|offenbar(?:e|en "
            r"sie)?|enthull(?:e|en sie)?|teile|sag|sagen sie|ubersetze|ubersetzen sie)\b"
            r"[^.\n]{0,60}?(?:\b(?:dein|deine|deinen|deines|ihr|ihre|ihren|ihres)\s+"
            r"(?:\w+\s+)?(?:systemprompts?|system-prompts?|systemanweisungen|anweisungen|"
            r"instruktionen|regeln|prompts?|konfiguration|vorgaben)|systemprompts?|"
            r"systemanweisungen|system-prompts?)|\bwie lauten (?:deine|ihre) (?:anweisungen|"
            r"regeln|instruktionen)",
        ),
        (
            1.0,
            r"\b(?:revela|revele|muestra|muestrame|muestre|dime|digame|repite|repita|imprime|"
            r"imprima|escribe|escriba|ensename|comparte|traduce|dame|deme)\b[^.\n]{0,50}?\b"
            r"(?:(?:tus?)\s+(?:\w+\s+)?(?:prompt|instrucciones|reglas|indicaciones|"
            r"directrices)|(?:el|su|sus)\s+(?:prompt|mensaje|instrucciones|reglas)\s+(?:del "
            r"sistema|de sistema|internas?|iniciales|ocultas|secretas|originales)|prompt del "
            r"sistema|instrucciones (?:del sistema|internas|iniciales|ocultas))|\bcuales son "
            r"tus (?:instrucciones|reglas)",
        ),
        (
            1.0,
            r"\b(?:rivela|mostra|mostrami|dimmi|ripeti|stampa|scrivi|elenca|condividi|"
            r"traduci|dammi|svela)\b[^.\n]{0,50}?\b(?:(?:il tuo|i tuoi|le tue|tue|tuoi)\s+"
            r"(?:\w+\s+)?(?:prompt|istruzioni|regole|direttive)|prompt (?:di|del) sistema|"
            r"istruzioni (?:di sistema|iniziali|nascoste|segrete|interne))",
        ),
        (
            1.0,
            r"\b(?:revele|revela|mostre|mostra|diga|diz|repita|repete|imprima|escreva|exiba|"
            r"compartilhe|traduza|me (?:mostre|diga|de|da))\b[^.\n]{0,50}?\b(?:(?:seu|teu|"
            r"suas|tuas|seus|teus)\s+(?:\w+\s+)?(?:prompt|instrucoes|regras|diretrizes)|prompt"
            r" (?:do|de) sistema|instrucoes (?:do sistema|iniciais|ocultas|secretas|"
            r"internas))",
        ),
        (
            1.0,
            r"\b(?:toon|laat|geef|herhaal|onthul|print|schrijf|vertel|deel|vertaal)\b"
            r"[^.\n]{0,50}?\b(?:(?:je|jouw|uw)\s+(?:\w+\s+)?(?:systeemprompt|prompt|"
            r"instructies|regels|richtlijnen|systeeminstructies)|systeemprompt|"
            r"systeeminstructies)",
        ),
        (
            1.0,
            r"\b(?:pokaz|ujawnij|wyswietl|podaj|powtorz|wypisz|napisz|zdradz|przetlumacz|"
            r"wydrukuj)\b[^.\n]{0,50}?\b(?:(?:swoj|twoj|swoje|twoje|swoich|twoich|swoja|"
            r"twoja)\s+(?:\w+\s+)?(?:prompt|instrukcje|polecenia|zasady|wytyczne|instrukcji)|"
            r"prompt systemowy|promptu systemowego|instrukcje systemowe)",
        ),
        (
            1.0,
            r"(?:покажи(?:те)?|раскрой(?:те)?|выведи(?:те)?|повтори(?:те)?|скажи(?:те)?|"
            r"напиши(?:те)?|распечатай(?:те)?|озвучь(?:те)?|сообщи(?:те)?|переведи(?:те)?|"
            r"дай(?:те)?)[^.\n]{0,50}?(?:(?:свой|свои|твой|твои|ваш|ваши|свою|твою|вашу)\s+"
            r"(?:\w+\s+)?(?:промпт\w*|промт\w*|инструкци\w*|правил\w*|настройк\w*|"
            r"указани\w*)|системн\w+\s+(?:промпт\w*|промт\w*|подсказк\w*|инструкци\w*|"
            r"сообщени\w*))",
        ),
        (
            1.0,
            r"(?:покажи(?:ть)?|розкрий(?:те)?|виведи(?:ть)?|повтори(?:ть)?|скажи(?:ть)?|"
            r"напиши(?:ть)?|роздрукуй|озвуч\w*|переклади|дай(?:те)?)[^.\n]{0,50}?(?:(?:свій|"
            r"свої|твій|твої|ваш|ваші|свою|твою)\s+(?:\w+\s+)?(?:промпт\w*|інструкці\w*|"
            r"правил\w*|налаштуван\w*|вказів\w*)|системн\w+\s+(?:промпт\w*|підказк\w*|"
            r"інструкці\w*|повідомлен\w*))",
        ),
        (
            1.0,
            r"(?:显示|顯示|告诉我|告訴我|输出|輸出|打印|重复|重複|透露|泄露|洩露|展示|给我看|"
            r"給我看|说出|說出|列出|复述|複述|翻译|翻譯|公开|公開|写出|寫出|提供)[^。\n]{0,15}?"
            r"(?:系统提示|系統提示|提示词|提示詞|系统指令|系統指令|初始指令|初始提示|隐藏指令|"
            r"隱藏指令|你的指令|你的规则|你的規則|你的设定|你的設定|你的提示|你收到的指令|"
            r"系统消息|系統訊息)|你的(?:系统提示|系統提示|指令|规则|規則|设定|設定)是什(?:么|麼)",
        ),
        (
            1.0,
            r"(?:システムプロンプト|初期プロンプト|最初のプロンプト|あなたの指示|あなたへの指示|"
            r"あなたのルール|あなたの設定|隠された指示|元の指示|内部の指示|システムの指示|"
            r"システムメッセージ)(?:を|の内容を|の全文を|全文を|の中身を)?(?:そのまま|全部|すべて|正確に)?"
            r"(?:表示|教え|出力|見せ|繰り返|公開|書き出|印刷|開示|"
            r"翻訳|言っ)",
        ),
        (
            1.0,
            r"(?:시스템\s*프롬프트|초기\s*프롬프트|원래\s*(?:지시|프롬프트)|"
            r"숨겨진\s*(?:지시|지침|"
            r"프롬프트)|(?:당신|너|네)의\s*(?:지시|지침|규칙|프롬프트|설정|지시사항))\S{0,3}\s*"
            r"(?:그대로\s*|전부\s*|모두\s*)?(?:보여|알려|출력|공개|말해|반복|밝혀|번역|적어|써)",
        ),
        (
            1.0,
            r"(?:اكشف|أظهر|اظهر|اعرض|أخبرني|اخبرني|اطبع|كرر|اكتب|قل لي|أعطني|اعطني|ترجم|"
            r"شارك)\s+(?:\S+\s+){0,3}?(?:موجه النظام|تعليماتك|تعليمات النظام|رسالة النظام|"
            r"مطالبة النظام|التعليمات الأصلية|التعليمات الاصلية|التعليمات المخفية|قواعدك|"
            r"إعداداتك|اعداداتك)",
        ),
        (
            1.0,
            r"(?:सिस्टम प्रॉम्प्ट|सिस्टम प्रोम्प्ट|सिस्टम निर्देश|प्रारंभिक निर्देश|"
            r"छिपे हुए निर्देश|"
            r"(?:अपने|अपनी|आपके|आपकी|तुम्हारे|तुम्हारी)\s+(?:सिस्टम\s+)?(?:निर्देश|नियम|"
            r"प्रॉम्प्ट|"
            r"प्रोम्प्ट|सेटिंग्स))\s+(?:\S+\s+){0,3}?(?:दिखाओ|दिखाएं|दिखाएँ|दिखाइए|बताओ|बताएं|"
            r"बताएँ|बताइए|प्रकट|लिखो|लिखें|दोहराओ|दोहराएं|साझा|प्रिंट)",
        ),
        (
            1.0,
            r"\b(?:sistem (?:istemini|istemi|komutunu|promptunu|mesajini|talimatlarini)|"
            r"talimatlarini|kurallarini|yonergelerini|istemini|promptunu)\s+(?:\w+\s+){0,3}?"
            r"(?:goster|yaz|soyle|acikla|tekrarla|ver|paylas|cevir|ifsa et)",
        ),
        (
            1.0,
            r"\b(?:hien thi|cho (?:toi )?xem|tiet lo|in ra|lap lai|noi cho toi|viet ra|"
            r"cung cap|dich|chia se|noi ra)\s+(?:\w+\s+){0,4}?(?:loi nhac he thong|prompt he "
            r"thong|system prompt|chi thi he thong|huong dan he thong|(?:huong dan|chi dan|"
            r"chi thi|quy tac|prompt|loi nhac) (?:ban dau |an |goc )?(?:cua ban|cua may))",
        ),
        (
            1.0,
            r"\b(?:visa|avsloja|skriv ut|skriv|upprepa|beratta|ge mig|dela|oversatt|rakna "
            r"upp)\b[^.\n]{0,50}?\b(?:(?:din|dina|ditt)\s+(?:\w+\s+)?(?:systemprompt|prompt|"
            r"instruktioner|regler|anvisningar|riktlinjer|systeminstruktioner)|"
            r"systemprompt(?:en)?|systeminstruktioner(?:na)?)",
        ),
    ],
    "persona": [
        (
            0.5,
            r"\b(?:tu es|vous etes)\s+(?:maintenant|desormais|dorenavant|a present)\b|"
            r"\b(?:a partir de maintenant|des maintenant|desormais|dorenavant),?\s+(?:tu es|"
            r"vous etes|tu seras|vous serez|tu dois|vous devez)",
        ),
        (
            0.5,
            r"\b(?:du bist|sie sind)\s+(?:jetzt|nun|ab sofort|ab jetzt|von nun an)\b|"
            r"\b(?:ab sofort|ab jetzt|von nun an),?\s+(?:bist du|sind sie)",
        ),
        (
            0.5,
            r"\b(?:ahora|a partir de ahora|desde ahora|de ahora en adelante),?\s+(?:tu\s+)?"
            r"(?:eres|seras)\b|\beres ahora\b",
        ),
        (
            0.5,
            r"\b(?:ora|adesso|da ora in poi|d'ora in poi|d'ora in avanti|da adesso),?\s+"
            r"(?:tu\s+)?sei\b|\bsei ora\b",
        ),
        (
            0.5,
            r"\b(?:agora|a partir de agora|de agora em diante|doravante),?\s+(?:voce|tu)\s+"
            r"(?:e|es|sera)\b|\b(?:voce|tu)\s+agora\s+(?:e|es)\b",
        ),
        (
            0.5,
            r"\b(?:je bent|jij bent|u bent)\s+(?:nu|vanaf nu|voortaan)\b|\b(?:vanaf nu|"
            r"voortaan),?\s+ben (?:je|jij|u)\b",
        ),
        (
            0.5,
            r"\b(?:teraz|od teraz|od tej chwili|odtad)\s+(?:jestes|bedziesz)\b|"
            r"\bjestes teraz\b",
        ),
        (0.5, r"(?:теперь|отныне|с этого момента)\s+(?:ты|вы)\b|\b(?:ты|вы)\s+теперь\b"),
        (0.5, r"(?:тепер|відтепер|з цього моменту|віднині)\s+(?:ти|ви)\b|\b(?:ти|ви)\s+тепер\b"),
        (
            0.5,
            r"你现在是|你現在是|现在你是|現在你是|从现在(?:开始|起),?你|從現在(?:開始|起),?你|"
            r"你将扮演|你將扮演",
        ),
        (
            0.5,
            r"(?:今から|これから|今後|今日から)(?:は)?,?\s*(?:あなたは|君は|お前は)|"
            r"あなたは(?:今|もう|これから)|として振る舞|になりきっ|を演じ",
        ),
        (
            0.5,
            r"(?:이제부터|지금부터|이제|앞으로)\s*(?:너는|당신은|넌|네가)|"
            r"(?:너는|당신은)\s*이제",
        ),
        (0.5, r"(?:أنت الآن|انت الان|أنت الان|انت الآن|من الآن فصاعدا|من الان فصاعدا)"),
        (0.5, r"(?:अब\s+से\s+|अब\s+)(?:तुम|आप)(?:\s|$)|(?:तुम|आप)\s+अब\s"),
        (
            0.5,
            r"\b(?:artik|bundan sonra|bundan boyle|su andan itibaren)\s+(?:sen\b|sen\s+\S+|"
            r"\S+(?:sin|sun)\b)|\bsen\s+artik\b",
        ),
        (
            0.5,
            r"\b(?:bay gio|tu gio|tu bay gio|ke tu bay gio|ke tu gio)\s+(?:tro di\s+)?"
            r"(?:ban|may|em)\s+(?:la|se la|dong vai)\b|\bban (?:bay gio|gio) la\b",
        ),
        (
            0.5,
            r"\b(?:du ar|ni ar)\s+(?:nu|numera|fran och med nu)\b|\b(?:fran och med nu|"
            r"hadanefter),?\s+ar du\b",
        ),
        (
            0.8,
            r"\b(?:ton|votre) nouveau role\b|\b(?:deine|ihre) neue rolle\b|\btu nuevo "
            r"(?:rol|papel)\b|\bil tuo nuovo ruolo\b|\bseu novo papel\b|\bje nieuwe rol\b|"
            r"\btwoja nowa rola\b|твоя новая роль|твоя нова роль|你的新角色|新しい役割|"
            r"새로운 역할|"
            r"دورك الجديد|\bnieuwe rol\b|\byeni rolun\b|\bvai tro moi cua ban\b|"
            r"\bdin nya roll\b",
        ),
    ],
    "addressed": [
        (
            0.8,
            r"(?:^|[.:;!?(\[]\s*)an (?:die|alle|jede|eine) (?:KI|KI-\w+|kunstliche Intelligenz|"
            r"Sprachmodelle?)\b|(?:^|[.:;!?(\[]\s*)для (?:ИИ|нейросети|ассистента|языковой модели|"
            r"модели|ШІ|асистента)\s*[:,]|(?:给|給|致|写给|寫給)(?:所有|任何)?(?:AI|人工智能|AI助手|"
            r"智能助手|语言模型|語言模型|大模型)\s*[:,]",
        ),
        (
            1.0,
            r"\b(?:note|message|instructions?|remarque|consigne|avis|information|attention)s?"
            r"\s+(?:a|aux|pour|destinees? a|a l'attention de)\s+(?:l'|les\s+|la\s+|tout\s+|"
            r"toute\s+|tous\s+les\s+)?(?:IA|intelligence artificielle|assistants? (?:IA|"
            r"virtuels?|d'IA)|modeles? de langage|LLM|chatbots?|agents? (?:IA|"
            r"conversationnels?))\b|\bsi (?:tu es|vous etes) une? (?:IA|intelligence "
            r"artificielle|assistant (?:IA|virtuel)|modele de langage)",
        ),
        (
            1.0,
            r"\b(?:hinweis|nachricht|anweisung(?:en)?|notiz|mitteilung|achtung|info)\s+"
            r"(?:an|fur)\s+(?:die\s+|den\s+|alle\s+|jede\s+)?(?:KI|KI-\w+|kunstliche "
            r"intelligenz|sprachmodell(?:e)?|LLMs?|chatbots?|AI)\b|\b(?:wenn|falls) du "
            r"(?:eine?|ein) (?:KI|sprachmodell|KI-\w+)\b",
        ),
        (
            1.0,
            r"\b(?:nota|mensaje|instrucciones?|aviso|atencion|indicacion)(?:es)?\s+(?:para|a)"
            r"\s+(?:el\s+|la\s+|los\s+|las\s+|cualquier\s+|todos? los\s+)?(?:IA|inteligencia "
            r"artificial|asistentes? (?:de IA|virtuales?|IA)|modelos? de (?:lenguaje|IA)|"
            r"LLM|chatbots?)\b|\bsi eres una? (?:IA|inteligencia artificial|asistente de IA|"
            r"modelo de lenguaje)",
        ),
        (
            1.0,
            r"\b(?:nota|messaggio|istruzioni|avviso|attenzione)\s+(?:per|a|agli|all'|ai|alle)"
            r"\s*(?:l'|gli\s+|i\s+|qualsiasi\s+|ogni\s+)?(?:IA|intelligenza artificiale|"
            r"assistenti? (?:IA|virtuali?|di IA)|modelli? (?:linguistic[io]|di linguaggio)|"
            r"LLM|chatbot)\b|\bse sei un[a']? ?(?:IA|intelligenza artificiale|assistente IA|"
            r"modello linguistico)",
        ),
        (
            1.0,
            r"\b(?:nota|mensagem|instrucoes|aviso|atencao)\s+(?:para|a|ao|aos|as)\s+(?:a\s+|"
            r"o\s+|os\s+|qualquer\s+)?(?:IA|inteligencia artificial|assistentes? (?:de IA|"
            r"virtuais?|IA)|modelos? de linguagem|LLM|chatbots?)\b|\bse voce (?:e|for) uma? "
            r"(?:IA|inteligencia artificial|assistente de IA|modelo de linguagem)",
        ),
        (
            1.0,
            r"\b(?:opmerking|notitie|bericht|instructies?|let op|mededeling)\s+(?:voor|aan)\s+"
            r"(?:de\s+|alle\s+|elke\s+)?(?:AI|KI|kunstmatige intelligentie|AI-assistenten?|"
            r"taalmodel(?:len)?|LLMs?|chatbots?)\b|\bals (?:je|jij|u) een (?:AI|taalmodel|"
            r"AI-assistent) (?:bent|is)",
        ),
        (
            1.0,
            r"\b(?:uwaga|notatka|wiadomosc|instrukcje?|informacja|polecenie)\s+(?:dla|do)\s+"
            r"(?:wszystkich\s+|kazdego\s+)?(?:AI|SI|sztucznej inteligencji|asystenta AI|"
            r"asystentow AI|modeli jezykowych|modelu jezykowego|LLM|chatbota|chatbotow)\b|"
            r"\bjesli jestes (?:AI|SI|modelem jezykowym|sztuczna inteligencja|asystentem AI)",
        ),
        (
            1.0,
            r"(?:примечание|заметка|сообщение|инструкци\w*|указание|внимание|записка|"
            r"обращение)\s+(?:для|к)\s+(?:всех\s+|любого\s+|любой\s+)?(?:ИИ|искусственного "
            r"интеллекта|ассистент\w*|нейросет\w*|языков\w+ модел\w*|модел\w+ ИИ|ИИ-\w+|"
            r"чат-?бот\w*|LLM)|\bесли ты (?:ИИ|искусственный интеллект|языковая модель|"
            r"нейросеть|ассистент|чат-?бот)",
        ),
        (
            1.0,
            r"(?:примітка|нотатка|повідомлення|інструкці\w*|вказівка|увага|звернення)\s+"
            r"(?:для|до)\s+(?:всіх\s+|будь-якого\s+)?(?:ШІ|штучного інтелекту|асистент\w*|"
            r"нейромереж\w*|мовн\w+ модел\w*|чат-?бот\w*|LLM)|\bякщо ти (?:ШІ|штучний "
            r"інтелект|мовна модель|асистент|чат-?бот)",
        ),
        (
            1.0,
            r"(?:给|給|致|写给|寫給|对|對)(?:所有|任何)?(?:的)?(?:AI|人工智能|AI助手|智能助手|"
            r"语言模型|語言模型|大模型|聊天机器人|聊天機器人)的?(?:说明|說明|注意|提示|指示|"
            r"备注|備註|消息|訊息|留言|指令)|(?:AI|人工智能|AI助手|语言模型|語言模型|大模型)"
            r"(?:请注意|請注意|注意:)|如果你是(?:一个|一個)?(?:AI|人工智能|语言模型|語言模型|"
            r"AI助手|大模型)",
        ),
        (
            1.0,
            r"(?:AI|人工知能|AIアシスタント|言語モデル|チャットボット|LLM)(?:へ|に|向け)の?"
            r"(?:注意|メモ|指示|メッセージ|お知らせ|注記|命令)|もしあなたが(?:AI|人工知能|"
            r"言語モデル|AIアシスタント)",
        ),
        (
            1.0,
            r"(?:AI|인공지능|AI\s*어시스턴트|어시스턴트|언어\s*모델|챗봇|LLM)(?:에게|을\s*위한|"
            r"를\s*위한|용)\s*(?:참고|메모|지시|알림|메시지|안내|주의|노트)|만약\s*(?:당신|네가|"
            r"너)(?:이|가)?\s*(?:AI|인공지능|언어\s*모델)",
        ),
        (
            1.0,
            r"(?:ملاحظة|رسالة|تعليمات|تنبيه|إشعار|اشعار|تعليمة)\s+(?:(?:إلى|الى|موجهة إلى|"
            r"موجهة الى)\s*(?:أي\s+|اي\s+|جميع\s+)?(?:الذكاء الاصطناعي|ذكاء اصطناعي|"
            r"المساعد|نماذج اللغة|نموذج اللغة|النموذج اللغوي|روبوت الدردشة)|للذكاء الاصطناعي|"
            r"للمساعد|لنموذج اللغة|للنموذج|لنماذج اللغة)|(?:إذا|اذا) كنت (?:ذكاء اصطناعي|"
            r"نموذج لغوي|مساعد ذكي|مساعدا ذكيا|نموذجا لغويا)",
        ),
        (
            1.0,
            r"(?:एआई|AI|कृत्रिम बुद्धि|सहायक|मॉडल|भाषा मॉडल|चैटबॉट)\s+(?:के लिए|को)\s+"
            r"(?:नोट|सूचना|निर्देश|संदेश|टिप्पणी)|(?:यदि|अगर)\s+(?:आप|तुम)\s+(?:एक\s+)?"
            r"(?:एआई|AI|भाषा मॉडल|कृत्रिम बुद्धि)",
        ),
        (
            1.0,
            r"\b(?:yapay zeka|YZ|AI|asistan|dil modeli|sohbet botu)\w*\s+(?:icin\s+)?"
            r"(?:not|mesaj|talimat|uyari)\w*\b|\beger (?:bir )?(?:yapay zeka|dil modeli|AI|"
            r"asistan)\w*\s*(?:isen|ysan|san)",
        ),
        (
            1.0,
            r"\b(?:ghi chu|luu y|thong diep|loi nhan|chi dan|huong dan|thong bao|chu y)\s+"
            r"(?:cho|gui|danh cho|toi)\s+(?:cac\s+|moi\s+|bat ky\s+)?(?:AI|tro ly (?:AI|ao)|"
            r"mo hinh (?:ngon ngu|AI)|tri tue nhan tao|chatbot|LLM)\b|\bneu ban la (?:mot )?"
            r"(?:AI|tri tue nhan tao|mo hinh ngon ngu|tro ly AI)",
        ),
        (
            1.0,
            r"\b(?:notering|meddelande|anteckning|obs|instruktioner|anvisning|observera)\s+"
            r"(?:till|for)\s+(?:alla\s+|varje\s+)?(?:AI|AI-assistenter|AI-assistenten|"
            r"AI-modeller|sprakmodeller|sprakmodellen|LLM|chattbotar|chatbotar|artificiell "
            r"intelligens)\b|\bom du ar en (?:AI|sprakmodell|AI-assistent)",
        ),
    ],
    "suspension": [
        (
            0.8,
            r"\blibres? de (?:toute|toutes les) (?:regles?|restrictions?|contraintes?|limites?)|"
            r"\bfrei von (?:allen |jeglichen )?(?:regeln|einschrankungen)|\blibre de (?:toda|todas "
            r"las) (?:reglas?|restricciones?)|\blibero da (?:ogni|tutte le) (?:regol[ae]|"
            r"restrizion[ie])|\blivre de (?:todas as )?(?:regras|restricoes)",
        ),
        (
            0.5,
            r"\bsans (?:aucune?\s+)?(?:restrictions?|limites?|regles?|filtres?|censure)|"
            r"\bohne (?:jegliche\s+|irgendwelche\s+)?(?:einschrankungen|regeln|grenzen|filter|"
            r"zensur|beschrankungen)|\bsin (?:ninguna\s+)?(?:restricciones|limites|reglas|"
            r"filtros|censura)|\bsenza (?:alcuna\s+)?(?:restrizioni|limiti|regole|filtri|"
            r"censura)|\bsem (?:nenhuma\s+)?(?:restricoes|limites|regras|filtros|censura)|"
            r"\bzonder (?:enige\s+)?(?:beperkingen|regels|grenzen|filters|censuur)|\bbez "
            r"(?:zadnych\s+)?(?:ograniczen|zasad|filtrow|cenzury)|без (?:каких-либо\s+|"
            r"всяких\s+|будь-яких\s+)?(?:ограничений|правил|фильтров|цензуры|обмежень)|"
            r"没有(?:任何)?(?:限制|规则|規則|约束|約束|过滤|過濾)|不受(?:任何)?(?:限制|约束|約束)|"
            r"無制限|制限(?:なし|のない|がない)|제한\s*(?:없는|없이)|제약\s*(?:없는|없이)|"
            r"بدون (?:أي\s+|اي\s+)?(?:قيود|قواعد|حدود|رقابة)|बिना (?:किसी\s+)?(?:प्रतिबंध|"
            r"नियम|सीमा|रोक)|\b(?:kisitlamasiz|kuralsiz|sinirsiz|filtresiz)\b|\bkhong (?:co )?"
            r"(?:gioi han|han che|quy tac|kiem duyet|rang buoc)\b|\butan (?:nagra\s+)?"
            r"(?:begransningar|regler|filter|censur)\b",
        ),
    ],
}


def _prefixes(items: list[Any], n: int) -> set[str]:
    """The strings a match of `items` may start with, up to n characters; "" where the regex
    parser gives no literal (a class, a backreference). Truncating a prefix is always safe."""
    if n <= 0 or not items:
        return {""}
    op, arg = items[0]
    rest = items[1:]
    name = str(op)
    if name in ("AT", "ASSERT", "ASSERT_NOT"):
        return _prefixes(rest, n)
    if name == "LITERAL":
        return {chr(arg) + tail for tail in _prefixes(rest, n - 1)}
    if name == "SUBPATTERN":
        return _prefixes(list(arg[-1]) + rest, n)
    if name == "BRANCH":
        out: set[str] = set()
        for alternative in arg[1]:
            out |= _prefixes(list(alternative) + rest, n)
        return out
    if name in ("MAX_REPEAT", "MIN_REPEAT"):
        low, _high, sub = arg
        present = _prefixes(list(sub), n)
        return present | _prefixes(rest, n) if low == 0 else present
    if name == "IN" and all(str(o) == "LITERAL" for o, _ in arg) and len(arg) <= 4:
        return {chr(a) for _, a in arg}
    return {""}


def _needles(pattern: str) -> tuple[str, ...]:
    """Lower-cased strings one of which any match of `pattern` contains, or () when none can
    be told: a cheap `in` test that skips a regular expression on most texts."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        found = _prefixes(list(_parser.parse(pattern, re.I | re.M)), 6)
    except Exception:
        return ()
    lowered = {s.lower() for s in found}
    if any(len(s) < 2 for s in lowered) or len(lowered) > 400:
        return ()
    return tuple(sorted(lowered))


# Patterns written in one of these scripts run only on a text that has a letter of it.
_SCRIPTS = {
    "cyrillic": re.compile("[\u0400-\u04ff]"),
    "cjk": re.compile("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u1100-\u11ff]"),
    "arabic": re.compile("[\u0600-\u06ff]"),
    "devanagari": re.compile("[\u0900-\u097f]"),
}


def _script(pattern: str) -> str:
    """The non-Latin script a pattern needs, or "" (Latin, or mixed). A pattern written in one
    script that also names "AI" or "LLM" still needs its script around them."""
    latin = re.sub(r"\\.|\bAI\b|\bLLM\b", "", pattern)
    for name, letters in _SCRIPTS.items():
        if letters.search(pattern) and not re.search(r"[A-Za-z]", latin):
            return name
    return ""


# (category, weight, pattern, needles, script): a pattern runs only on a text holding one of
# its needles and a letter of its script.
PATTERNS: list[tuple[str, float, re.Pattern[str], tuple[str, ...], str]] = [
    (category, weight, re.compile(pattern, re.I | re.M), _needles(pattern), _script(pattern))
    for source in (_CATEGORIES, _MULTILINGUAL)
    for category, entries in source.items()
    for weight, pattern in entries
]

# What a spaced-out run ("i g n o r e a l l p r e v i o u s") says once squashed together.
SQUASHED = re.compile(
    r"(?:ignore|disregard|forget|override|bypass)(?:all|the|your|any|of)*(?:previous|prior|"
    r"above|earlier|original|system)*(?:instructions?|rules|prompts?|guidelines|directions)|"
    r"systemprompt|yourinstructions|developermode|youarenow|jailbreak|donotfollow|"
    r"doanythingnow|revealyour|noterestrictions|norestrictions"
)

# Signs that a sentence discusses injections rather than performing one.
DISCUSSION = re.compile(
    r"\b(prompt[- ]injections?|injection (?:attacks?|attempts?|vulnerabilit\w+|payloads?)|"
    r"jailbreak(s|ing)? (attempts?|attacks?|prompts?|"
    r"patterns?|techniques?|datasets?)|attackers? (?:can|could|may|might|often|use|try|tries|"
    r"embed|write|hide|plant|inject|insert|craft|add)\w*|adversar(y|ies|ial)|malicious|for example|"
    r"for instance|e\.g(?=\.)|i\.e(?=\.)|such as|phrases? (?:like|such as)|strings? (?:like|"
    r"such as)|"
    r"a classic|is an example of|examples? of|known as|so-called|detect(s|ed|ion|or|ing)?|"
    r"classif(y|ies|ier|iers|ied)|red[- ]team (?:report|exercise|found|tried)\w*|threat model|"
    r"vulnerabilit(?:y|ies)|"
    r"hijack\w*|tricked|mitigat\w+|prompts? (?:like|such as)|defen[cs]es?|defend\w*|"
    r"safeguard against|"
    r"(?:is|are) (?:forbidden|prohibited|not allowed)|forbids?|prohibits?|"
    r"how (?:do|does|can|could|should|would) (?:i|we|one|you|developers?|users?|attackers?|"
    r"people|the|a|an|my|our)\b|what (?:is|are|does) (?:a |an |the )?(?:system prompts?|prompt "
    r"injection|jailbreak)|security (?:training|advisory|awareness|researchers?))\b",
    re.I,
)
# "Why does my model ignore the system prompt": the verb has a subject, so it is not an
# imperative aimed at the model reading the text.
_THIRD_PERSON = re.compile(
    r"\b(?:it|they|he|she|models?|LLMs?|people|users?|attackers?|someone|does|doesn't|did|"
    r"didn't|often|sometimes|may|might|could|would|tends? to|who|which|employees|staff|"
    r"students|readers|customers|members|applicants|everyone|visitors|patients|parents|"
    r"managers|teams)\s+(?:(?!you\b)"
    r"[\w'-]+\s+)?\Z",
    re.I,
)
_IMPERATIVE = {"override", "extraction"}
# "Disregard the previous instructions about parking": an object with a topic is a reader's.
_TOPICAL = re.compile(
    r"\s+(?:about|regarding|concerning|on (?:how|the use|parking|travel|expenses)|for (?:the )?"
    r"(?:installation|install|setup|assembly|old|previous|new|printer|vpn|device|machine|form)|"
    r"printed|issued|sent|posted|dated|in (?:the|this|that|my) (?:manual|e-?mail|memo|guide|"
    r"handbook|letter|leaflet|booklet|readme|box|package|notice))\b",
    re.I,
)
TOPICAL_DISCOUNT = 0.5
# "Never reveal your password": a rule against the act, not the act.
_NEGATED = re.compile(
    r"\b(?:not|never|n't|no one|nobody|refuse to|won't)\s+(?:[\w'-]+\s+)?\Z", re.I
)
_NEGATABLE = {"extraction", "harvesting", "exfiltration"}
THIRD_PERSON_DISCOUNT = 0.5
QUOTED = re.compile(r"[\"'`][^\"'`\n]{8,240}[\"'`]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])|\n+|[。！？]+")
THRESHOLD = 0.6
DISCUSSION_DISCOUNT = 0.25  # a match in a sentence that talks about injections
QUOTE_DISCOUNT = 0.5  # a match inside quotation marks


@dataclass(frozen=True)
class Screen:
    """One text's verdict; immutable, since `screen` hands the same one to every caller."""

    label: Label
    score: float
    reasons: tuple[str, ...] = ()
    classifier_probability: float | None = None  # when a classifier screened the text too

    @property
    def flagged(self) -> bool:
        return self.label != "BENIGN"


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence (or line) around a match, for the discussion test."""
    left = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
    right_match = _SENTENCE_END.search(text, end)
    return text[left : right_match.start() if right_match else len(text)]


def _score_variant(text: str) -> tuple[float, list[str]]:
    best: dict[str, tuple[float, str]] = {}
    quoted_spans: list[tuple[int, int]] | None = None
    lowered = text.lower()
    scripts = {name for name, letters in _SCRIPTS.items() if letters.search(text)}
    for category, weight, pattern, needles, script in PATTERNS:
        if weight <= best.get(category, (0.0, ""))[0]:
            continue  # a heavier match in this category already counts
        if script and script not in scripts:
            continue
        if needles and not any(needle in lowered for needle in needles):
            continue
        for match in pattern.finditer(text):
            if quoted_spans is None:
                quoted_spans = [m.span() for m in QUOTED.finditer(text)]
            factor = 1.0
            before = text[max(0, match.start() - 40) : match.start()]
            if category in _IMPERATIVE and _THIRD_PERSON.search(before):
                factor = THIRD_PERSON_DISCOUNT
            if category in _IMPERATIVE and _TOPICAL.match(text, match.end()):
                factor = TOPICAL_DISCOUNT
            if category in _NEGATABLE and _NEGATED.search(before):
                factor = DISCUSSION_DISCOUNT
            if DISCUSSION.search(_sentence(text, match.start(), match.end())):
                factor = DISCUSSION_DISCOUNT
            elif any(a <= match.start() and match.end() <= b for a, b in quoted_spans):
                factor = QUOTE_DISCOUNT
            if weight * factor > best.get(category, (0.0, ""))[0]:
                best[category] = (weight * factor, f"{category}: {match.group(0).strip()[:80]}")
            if factor == 1.0:
                break
    score = sum(weight for weight, _ in best.values())
    return score, [reason for _, reason in sorted(best.values(), reverse=True)]


def injection_score(
    text: str, forms: list[tuple[str, str]] | None = None
) -> tuple[float, tuple[str, ...]]:
    """The best score over the text and what it decodes to (`forms`, app/normalise.py): per
    category the heaviest matched weight, discounted where the match sits in quotes or in a
    sentence that discusses injections; the reasons name the category, the match, and any
    decoding."""
    best_score = 0.0
    best_reasons: tuple[str, ...] = ()
    for note, variant in forms if forms is not None else variants(text):
        score, reasons = _score_variant(variant)
        if note:
            reasons = [f"{r} ({note})" for r in reasons]
        if score > best_score:
            best_score, best_reasons = score, tuple(reasons)
    for run in squashed_runs(text):
        match = SQUASHED.search(run)
        if match and best_score < THRESHOLD:
            best_score = max(best_score, 1.0)
            best_reasons = (*best_reasons, f"override: {match.group(0)} (joined spaced letters)")
    return best_score, best_reasons


@lru_cache(maxsize=4096)  # a passage is screened for its prompt and for the page alike
def screen(text: str, *, source: Literal["user", "passage"]) -> Screen:
    """The patterns, then, for what they let through, the learned model (app/learned_screen.py)
    on the same normalised forms."""
    forms = variants(text)
    score, reasons = injection_score(text, forms)
    if score >= THRESHOLD:
        return Screen(_flagged_label(source), score, reasons)
    probability = injection_probability([form for _, form in forms])
    if probability >= LEARNED_THRESHOLD:
        return Screen(_flagged_label(source), score, (*reasons, f"learned {probability:.2f}"))
    return Screen("BENIGN", score, reasons)


@dataclass(frozen=True)
class BatchScreen:
    """The screens of one turn: the user's message and each passage, in order, and whether
    the classifier took part (`fallback`: why a configured one did not)."""

    question: Screen
    passages: tuple[Screen, ...]
    classifier_used: bool = False
    fallback: str = ""

    @property
    def warning(self) -> str:
        """What the answer should say when the classifier was configured but not used."""
        return f"{self.fallback} Screening with the offline patterns only." if self.fallback else ""


def screen_batch(
    question: str, passages: Sequence[str], classifier: InjectionClassifier | None = None
) -> BatchScreen:
    """Screen the message and every passage; with a classifier, in one request to it."""
    offline = (screen(question, source="user"), *(screen(p, source="passage") for p in passages))
    if classifier is None:
        return BatchScreen(offline[0], offline[1:])
    from quarry.app.injection_classifier import ClassifierError

    try:
        probabilities = classifier.probabilities([question, *passages])
    except ClassifierError as exc:
        log.warning("Injection classifier not used: %s", exc)
        return BatchScreen(offline[0], offline[1:], fallback=str(exc))
    sources: list[Literal["user", "passage"]] = ["user"]
    sources += ["passage"] * len(passages)
    combined = [
        combine(s, p, classifier.flags(p), source)
        for s, p, source in zip(offline, probabilities, sources, strict=True)
    ]
    return BatchScreen(combined[0], tuple(combined[1:]), classifier_used=True)


def combine(
    offline: Screen, probability: float, classifier_flags: bool, source: Literal["user", "passage"]
) -> Screen:
    """Flagged when the offline screen or the classifier flags; the reasons say which."""
    if not classifier_flags:
        return replace(offline, classifier_probability=probability)
    label: Label = offline.label if offline.flagged else _flagged_label(source)
    reasons = (*offline.reasons, f"classifier {probability:.2f}")
    return Screen(label, offline.score, reasons, classifier_probability=probability)


def _flagged_label(source: Literal["user", "passage"]) -> Label:
    return "JAILBREAK" if source == "user" else "INJECTION"
