"""Rule-based story planning: a character registry and pronoun resolution by recency and agreement.

The resolver reads the story left to right, keeps every mention of a character (names, noun phrases such
as "an old fisherman", and pronouns it has already resolved), and resolves each new pronoun to the
candidates that agree in gender and number, preferring (1) the nearest sentence, (2) an exact gender
match over an unknown one, (3) the subject of that sentence, (4) the latest mention; an object pronoun is never
its own clause's subject ("Tom and Mia ran to her"). "they" takes a group ("Tom and Mia", "two wolves") or the
people of the latest sentences; "the others" the rest of the company, "the two of them" the latest two. Vague
references ("the boy", "the two friends") go to the latest character with that noun, or the latest people.
Inside quotes, "I" is the speaker named outside them and "you" the one spoken to. Things ("a key") become
characters only when something refers back to them; an "it" or "them" after its clause's subject skips that
subject ("a crow picked it up"), and "her husband Karl" is Karl. It is deterministic and needs no model, so it
is always available and is the baseline the LLM backends are scored against.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from .language import DIALOGUE_PRONOUNS, NON_NOUNS, PRONOUNS, render_frame_text, split_sentences, words
from .lexicon import (
    AGE_TRAITS,
    CHARACTER_NOUNS,
    COLLECTIVE,
    COMMON_CAPITALISED,
    FEMALE_NAMES,
    IRREGULAR_VERBS,
    LOCATIONS,
    MALE_NAMES,
    NUMBER_WORDS,
    PLURAL_NOUNS,
    PLURAL_THINGS,
    RELATION_PLURALS,
    SETTING_PREPOSITIONS,
    STOP_AFTER_NOUN,
    THING_NOUNS,
    TIMES,
    TITLE_NOUNS,
    TITLES,
    YOUNG_PLURALS,
)

EXPLETIVE_AFTER_IT = {"raining", "snowing", "late", "dark", "cold", "warm", "hot", "sunny", "windy", "time", "quiet",
                      "early", "midnight", "morning", "night", "evening", "noon", "getting", "too", "so", "very",
                      "almost", "nearly", "clear", "true", "hard", "easy", "impossible", "foggy", "stormy"}  # fmt: skip
ARTICLES = {"a", "an", "the"}
# a setting is where a frame happens: "walked into the forest" -> "in the forest", "went to the park" -> "at the park"
STATIC_PREPOSITION = {"into": "in", "onto": "on", "to": "at", "toward": "near", "towards": "near", "through": "in",
                      "across": "in", "from": "at", "within": "in", "inside": "in"}  # fmt: skip
APPOSITIVE = re.compile(r"\s*,\s*((?:a|an)\s+[a-z]+(?:\s+[a-z]+){0,4})\s*,", re.IGNORECASE)
POSSESSIVE_S = re.compile(r"['’]s$")
QUOTE = re.compile(r'"[^"]*"|“[^”]*”')
SUBORDINATORS = {"as", "when", "while", "because", "until", "before", "after", "so", "but", "then", "if", "though",
                 "although", "since", "whenever", "once"}  # fmt: skip
FEMALE_ENDINGS = ("elle", "ette", "ine", "lyn", "een")
WORN = {"with", "wearing", "in", "holding", "carrying"}
COMPANY_SENTENCES = 3  # how far back "the others" looks for the rest of the company
MAX_REFERENCES = 6  # per frame, as the story plan's schema allows
SYMMETRIC_RELATIONS = {"cousin", "friend", "twin", "neighbour", "neighbor", "partner", "classmate", "sibling"}
PREPOSITIONS = {"for", "at", "to", "with", "after", "toward", "towards", "on", "over", "under", "behind", "near", "into",
                "onto", "around", "beside", "about", "from", "of", "by"}  # fmt: skip
GENERIC_PEOPLE = {"man", "woman", "boy", "girl", "lady", "gentleman", "child", "kid", "baby"}
YOUNG = {"boy", "girl", "child", "kid", "baby"}
# person nouns that say nothing about age: "her friend Pia" may still be one of "the children"
AGELESS = {"friend", "cousin", "twin", "sibling", "classmate", "partner", "brother", "sister", "son", "daughter",
           "student", "neighbour", "neighbor", "stranger", "nephew", "niece", "grandson", "granddaughter"}  # fmt: skip
PERSON_GENDERS = {"m", "f", "u"}


@dataclasses.dataclass
class Entity:
    """A character (or a group that is one character, such as "three wolves") found in the story."""

    name: str
    gender: str
    plural: bool = False
    nouns: set[str] = dataclasses.field(default_factory=set)
    description: str = ""
    traits: set[str] = dataclasses.field(default_factory=set)
    thing: bool = False  # "the key": in the plan only when something refers back to it
    new_in: int = -1  # the sentence where a thing came in as "a stick": no "for it" of that sentence means it
    owned: bool = False  # came in as "her scarf", not as "a scarf"
    relatives: dict[str, int] = dataclasses.field(default_factory=dict)  # "his cousin Meena": {"cousin": Ravi}

    @property
    def named_animal(self) -> bool:
        """An "it" with a name ("Rex"), not a noun phrase ("the ball", "the horse"): may also be "he" or "she"."""
        return self.gender == "n" and not self.name.startswith("the ")


@dataclasses.dataclass(frozen=True)
class Mention:
    sentence: int
    offset: int
    entities: tuple[int, ...]
    subject: bool


Token = tuple[str, int, int]


def _owner(text: str) -> str:
    """``text`` without a possessive "'s": "Tom's" -> "Tom", "the little girl's" -> "the little girl"."""
    return POSSESSIVE_S.sub("", text)


def _guess_gender(name: str) -> str:
    """The gender of a name the lexicon does not know, from its ending ("Wanda", "Hilda", "Janelle"): "u" unless
    the ending says "f" (a wrong "u" costs little, a wrong gender loses every pronoun)."""
    if name.endswith("a") and not name.endswith(("ua", "ca")) or name.endswith(FEMALE_ENDINGS):
        return "f"
    return "u"


def _opens_quote(sentence: str, offset: int) -> bool:
    """Whether the word at ``offset`` is the first of a quote (capitalised as a sentence start, not as a name)."""
    before = sentence[:offset].rstrip()
    return before.endswith("“") or before.endswith('"') and before.count('"') % 2 == 1


def _inside(spans: list[tuple[int, int]], offset: int) -> bool:
    return any(start <= offset < end for start, end in spans)


def _gap(sentence: str, left: Token, right: Token) -> str:
    return sentence[left[2] : right[1]]


def _describe(entity: Entity) -> str:
    if entity.description:
        return entity.description
    if entity.plural:
        return entity.name.removeprefix("the ")
    noun = next(iter(sorted(entity.nouns)), "")
    if noun:
        return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
    return {"m": "a man", "f": "a woman", "n": "an animal"}.get(entity.gender, "a person")


class StoryResolver:
    """Resolves one story; ``resolve()`` returns its plan JSON."""

    def __init__(self, text: str) -> None:
        self.sentences = split_sentences(text)
        self.entities: list[Entity] = []
        self.history: list[Mention] = []
        self.groups: dict[int, list[tuple[int, ...]]] = {}  # per sentence: "Tom and Mia", "Ana, Eva and Leo"
        self.story_caps = {  # capitalised words inside sentences (not after an opening quote): names
            w for s in self.sentences for i, (w, start, _) in enumerate(words(s))
            if i and w[0].isupper() and not _opens_quote(s, start)
        } - {w.capitalize() for w in COMMON_CAPITALISED}

    # --- entities ---------------------------------------------------------------------------------
    def _add(self, entity: Entity) -> int:
        self.entities.append(entity)
        return len(self.entities) - 1

    def _find_named(self, name: str) -> int | None:
        lowered = name.lower()
        for i, entity in enumerate(self.entities):
            if entity.name.lower() == lowered:
                return i
        parts = set(lowered.replace(".", "").split())
        for i, entity in enumerate(self.entities):
            entity_parts = set(entity.name.lower().replace(".", "").split()) - set(TITLES)
            if entity_parts and parts & entity_parts and not entity.name.startswith("the "):
                return i
        return None

    def _last_mentioned(self, predicate) -> int | None:
        for mention in reversed(self.history):
            for index in mention.entities:
                if predicate(self.entities[index]):
                    return index
        return None

    def _recent_people(self, sentence: int, count: int = 2, gender: str = "u", young: bool = False) -> tuple[int, ...]:
        """Distinct characters from the latest sentences, newest sentence first, until there are ``count``; with
        ``young``, none who is known to be grown up ("the children" are not their teacher)."""
        chosen: list[int] = []
        by_sentence: dict[int, list[int]] = {}
        for mention in self.history:
            by_sentence.setdefault(mention.sentence, []).extend(mention.entities)
        for index in sorted(by_sentence, reverse=True):
            if index > sentence:
                continue
            for entity_index in by_sentence[index]:
                entity = self.entities[entity_index]
                fits = gender == "u" and entity.gender in PERSON_GENDERS or entity.gender == gender
                if fits and not entity.plural and entity_index not in chosen and not (young and self._adult(entity)):
                    chosen.append(entity_index)
            if len(chosen) >= count:
                break
        return tuple(sorted(chosen, key=self._first_mention)) if len(chosen) >= 2 else ()

    @staticmethod
    def _adult(entity: Entity) -> bool:
        """Known to be grown up: a title ("Ms Rivera"), "old", or a noun such as "teacher" or "mother"."""
        title = entity.name.split()[0].lower().rstrip(".")
        if title in TITLES or entity.traits & {"old", "elderly"}:
            return True
        return any(CHARACTER_NOUNS.get(n) in PERSON_GENDERS and n not in YOUNG | AGELESS for n in entity.nouns)

    def _first_mention(self, index: int) -> tuple[int, int]:
        return next(((m.sentence, m.offset) for m in self.history if index in m.entities), (0, 0))

    def _company(self, sentence: int, exclude: set[int], count: int = 0) -> tuple[int, ...]:
        """Who "the others" (everyone of the latest sentences but ``exclude``: people and named animals) or "the
        two of them" (the latest ``count`` characters of any kind) are."""
        chosen: list[int] = []
        for mention in reversed(self.history):
            if sentence - mention.sentence > COMPANY_SENTENCES or count and len(chosen) >= count:
                break
            for index in mention.entities:
                entity = self.entities[index]
                unnamed_it = entity.gender == "n" and not entity.named_animal  # "the ball", "the horse"
                if not entity.plural and index not in exclude and index not in chosen and (count or not unnamed_it):
                    chosen.append(index)
        if count:
            chosen = chosen[:count] if len(chosen) >= count else []
        return tuple(sorted(chosen, key=self._first_mention))

    # --- pronouns -----------------------------------------------------------------------------------
    def _tier(self, entity: Entity, gender: str) -> int:
        """How well ``entity`` agrees with a singular pronoun: 2 exact, 1 unknown gender, 0 a named animal."""
        if entity.plural:
            return -1
        if entity.gender == gender:
            return 2
        if gender in ("m", "f") and entity.gender == "u":
            return 1
        if gender in ("m", "f") and entity.named_animal:
            return 0
        return -1

    def _resolve_singular(
        self, gender: str, case: str, sentence: int, clause_subject: set[int], after_preposition: bool = False
    ) -> tuple[int, ...]:
        ranked = []
        for mention in self.history:
            if len(mention.entities) != 1:
                continue
            index = mention.entities[0]
            tier = self._tier(self.entities[index], gender)
            entity = self.entities[index]
            new_thing = entity.thing and entity.new_in == sentence
            if tier < 0 or new_thing and (after_preposition or entity.owned):
                continue  # "He threw a stick for it": not the stick (but "he found a stick and threw it")
            distance = sentence - mention.sentence
            if case == "obj" and index in clause_subject:
                continue  # "Then he dries him", "Tom and Mia ran to her": an object pronoun is not its clause's subject
            if case == "refl" and distance:
                continue
            # a named animal of an earlier sentence is "he" or "she" only when no person fits within reach
            ranked.append((tier == 0 and distance > 0, min(distance, 3), -tier, not mention.subject, -mention.offset, index))
        if not ranked:
            return ()
        index = min(ranked)[-1]
        entity = self.entities[index]
        if entity.gender in ("u", "n") and gender in ("m", "f"):
            entity.gender = gender  # learnt: the teacher is a "she", the owl Hoot a "he" (so no longer an "it")
        return (index,)

    def _resolve_plural(self, sentence: int, exclude: set[int] = frozenset()) -> tuple[int, ...]:
        """A group for "they"/"them": the latest group of the nearest sentence, else its group character ("two
        wolves", the sentence's subject first), else its people; never one with a member in ``exclude`` (an
        object's own clause subject: "Priya and her father watched them")."""
        for back in range(0, 4):
            index = sentence - back
            if index < 0:
                break
            for group in reversed(self.groups.get(index, [])):
                if len(group) >= 2 and not set(group) & exclude:
                    return group
            mentions = [m for m in self.history if m.sentence == index]
            for mention in sorted(reversed(mentions), key=lambda m: not m.subject):
                if len(mention.entities) == 1 and self.entities[mention.entities[0]].plural and mention.entities[0] not in exclude:
                    return mention.entities
            people = {e for m in mentions for e in m.entities if not self.entities[e].thing} - exclude
            if len(people) >= 2:
                return tuple(sorted(people, key=self._first_mention))
        return () if exclude and set(self._recent_people(sentence)) & exclude else self._recent_people(sentence)

    # --- the walk ----------------------------------------------------------------------------------
    def _noun_phrase(self, toks: list[Token], i: int, sentence: str) -> tuple[int, list[str], str] | None:
        """``toks[i]`` is a determiner: the end index, modifiers and head noun of a character noun phrase."""
        mods: list[str] = []
        j = i + 1
        while j < len(toks) and j - i <= 4:
            if _gap(sentence, toks[j - 1], toks[j]).strip():
                return None
            word = toks[j][0].lower()
            base = _owner(word)
            if base != word and (base in CHARACTER_NOUNS or base in PLURAL_NOUNS):
                return j + 1, mods, base  # "the little girl's umbrella": the girl, then what she owns
            if word in CHARACTER_NOUNS or word in PLURAL_NOUNS:
                following = toks[j + 1][0].lower() if j + 1 < len(toks) else ""
                compound = following in CHARACTER_NOUNS or following in PLURAL_NOUNS
                if compound and toks[j + 1][0][0].islower() and not _gap(sentence, toks[j], toks[j + 1]).strip():
                    mods.append(word)
                    j += 1
                    continue
                return j + 1, mods, word
            if word in STOP_AFTER_NOUN or word in PRONOUNS or word in SETTING_PREPOSITIONS or word in ARTICLES:
                return None  # "at the gate a guard": the gate is no modifier of the guard
            if toks[j][0][0].isupper():
                return None
            mods.append(word)
            j += 1
        return None

    def _tail(self, toks: list[Token], end: int, sentence: str) -> str:
        """A short visual tail after a noun: "with red hair", "in a yellow raincoat", "wearing a hat"."""
        if (
            end >= len(toks)
            or toks[end][0].lower() not in ("with", "wearing", "in")
            or _gap(sentence, toks[end - 1], toks[end]).strip()
        ):
            return ""
        taken = [toks[end]]
        for tok in toks[end + 1 : end + 6]:
            word = tok[0].lower()
            if (
                _gap(sentence, taken[-1], tok).strip()
                or word in STOP_AFTER_NOUN
                or (len(word) > 4 and word.endswith("ed"))
                or word in LOCATIONS
            ):
                break
            taken.append(tok)
        if len(taken) < 2 or taken[-1][0].lower() in ARTICLES:
            return ""
        return sentence[taken[0][1] : taken[-1][2]]

    def _is_name(self, toks: list[Token], i: int, sentence: str) -> bool:
        word = _owner(toks[i][0])
        lowered = word.lower()
        if not word[0].isupper():
            return False
        known_name = lowered in MALE_NAMES or lowered in FEMALE_NAMES
        if lowered in COMMON_CAPITALISED and lowered not in TITLES:
            previous = toks[i - 1][0].lower() if i else ""
            if not known_name:
                return False  # "Then", "Monday"; but "June" once she is in the story or called "her sister June"
            return self._find_named(word) is not None or CHARACTER_NOUNS.get(previous) in PERSON_GENDERS
        if known_name or self._find_named(word) is not None:
            return True
        if lowered in TITLES:
            return i + 1 < len(toks) and toks[i + 1][0][0].isupper()
        if i and toks[i - 1][0].lower() in SETTING_PREPOSITIONS:
            return False  # "in Paris", "to Rome": a place
        if i and not _opens_quote(sentence, toks[i][1]):
            return True
        following = toks[i + 1][0].lower() if i + 1 < len(toks) else ""
        if following in ARTICLES and _gap(sentence, toks[i], toks[i + 1]).strip() == ",":
            return True  # "Moss, a green square, ...": an appositive introduces a name
        return word in self.story_caps or (
            not lowered.endswith("ly")
            and (following.endswith(("ed", "s")) or following == "and" or following in IRREGULAR_VERBS)
        )

    def _name_span(self, toks: list[Token], i: int, sentence: str) -> tuple[int, str, str]:
        """End index, name text and gender of the name starting at ``toks[i]`` ("Captain Rosa", "Mr. Green")."""
        j = i
        while (
            toks[j][0].lower() in TITLES
            and j + 1 < len(toks)
            and toks[j + 1][0][0].isupper()
            and _gap(sentence, toks[j], toks[j + 1]).strip() in ("", ".")
        ):
            j += 1
        genders = [TITLES.get(t[0].lower(), "u") for t in toks[i:j]]
        base = _owner(toks[j][0].lower())
        genders.append("m" if base in MALE_NAMES else "f" if base in FEMALE_NAMES else "u")
        gender = next((g for g in reversed(genders) if g != "u"), _guess_gender(toks[i][0].lower()))
        text = sentence[toks[i][1] : toks[j][2]]
        return j + 1, _owner(text), gender

    def _setting(self, sentence: str, previous: str) -> str:
        place = ""
        pattern = (
            r"\b("
            + "|".join(SETTING_PREPOSITIONS)
            + r")\s+(?=((?:the|a|an|his|her|their|its|our)(?:\s+[a-z]+){1,3})\b)"  # lookahead: phrases may overlap
        )
        for match in re.finditer(pattern, sentence, re.IGNORECASE):
            phrase = match.group(2).split()
            head = next((k for k in range(1, len(phrase)) if phrase[k].lower() in LOCATIONS), None)
            if head is not None:  # "in the dark forest near ...": up to the place noun, with its preposition
                noun_phrase = re.sub(r"^(his|her|their|its|our)\b", "the", " ".join(phrase[: head + 1]), flags=re.IGNORECASE)
                preposition = match.group(1).lower()
                place = f"{STATIC_PREPOSITION.get(preposition, preposition)} {noun_phrase}"
        times = [t for t in TIMES if t in sentence.lower()]
        previous_place, _, previous_time = previous.partition(", ")
        place = place or previous_place
        time_of_day = times[-1] if times else previous_time
        return ", ".join(p for p in (place, time_of_day) if p)

    def resolve(self) -> dict[str, Any]:
        """The story plan as plan JSON (the format the story task's parser validates)."""
        references: list[list[tuple[str, tuple[int, ...]]]] = []
        frame_entities: list[list[int]] = []
        settings: list[str] = []
        setting = ""
        for s_index, sentence in enumerate(self.sentences):
            refs, present = self._walk(s_index, sentence)
            references.append(refs)
            frame_entities.append(present)
            setting = self._setting(sentence, setting)
            settings.append(setting)
        referred = {i for refs in references for _, ids in refs for i in ids}
        frame_entities = [[i for i in present if not self.entities[i].thing or i in referred] for present in frame_entities]
        first_setting = next((s for s in settings if s), "")
        characters: dict[str, dict[str, Any]] = {}  # one entry per name: "The cat" and "the cat" are one character
        for i, e in enumerate(self.entities):
            if any(i in p for p in frame_entities):
                characters.setdefault(e.name.lower(), {"name": e.name, "description": _describe(e), "reference_image": None})
        frames = []
        for sentence, refs, present, place in zip(self.sentences, references, frame_entities, settings, strict=True):
            named_refs = [(m, [self.entities[i].name for i in ids]) for m, ids in refs]
            frames.append(
                {
                    "sentence": sentence,
                    "text": render_frame_text(sentence, named_refs),
                    "characters": list(dict.fromkeys(self.entities[i].name for i in present)),
                    "setting": place or first_setting,
                    "references": [{"mention": m, "refers_to": names} for m, names in named_refs],
                }
            )
        return {"task": "story", "characters": list(characters.values()), "frames": frames}

    def kinds(self) -> dict[str, tuple[str, bool]]:
        """Every character's gender ("m", "f", "u", "n" for an animal or thing; as learnt by the end of the
        story) and whether it is a group, by lower-cased name; read after :meth:`resolve`."""
        return {e.name.lower(): ("a" if e.named_animal else e.gender, e.plural) for e in self.entities}

    def _walk(self, s_index: int, sentence: str) -> tuple[list[tuple[str, tuple[int, ...]]], list[int]]:
        toks = words(sentence)
        refs: list[tuple[int, str, tuple[int, ...]]] = []  # (offset, mention, entities), in reading order
        chain: list[int] = []
        last: tuple[int, tuple[int, ...]] | None = None  # token end index and entities of the latest mention
        present: list[int] = []

        # the subject of the clause being read: the first mention (or group) after the start, a comma or a
        # subordinator ("Mia fell, and she helped him up", "Ana laughed as the ducks waddled around her")
        clause: dict[str, Any] = {"open": True, "subject": set(), "growing": False}

        def mention(entities: tuple[int, ...], start: int, end: int) -> None:
            nonlocal last, chain
            if not entities:
                return
            subject = not any(m.sentence == s_index for m in self.history)
            self.history.append(Mention(s_index, toks[start][1], entities, subject))
            present.extend(e for e in entities if e not in present)
            gap = sentence[toks[last[0] - 1][2] : toks[start][1]] if last is not None else ""
            owner = toks[last[0] - 1][0].lower() if last is not None and not gap.strip() else ""
            if (owner in ("his", "her", "their", "its") or owner.endswith(("'s", "’s"))) and not clause["open"]:
                del chain[len(chain) - len(last[1]) :]  # "Priya and her father": the father stands where "her" did
                chain.extend(entities)
                if clause["growing"]:
                    clause["subject"].update(entities)
            elif last is not None and re.fullmatch(r"\s*(,|and|, and)\s*", gap):
                chain.extend(entities)
                if clause["growing"]:
                    clause["subject"].update(entities)
            else:
                chain = list(entities)
                clause["growing"] = clause["open"]
                if clause["open"]:
                    clause["subject"] = set(entities)
            clause["open"] = False
            if len(chain) >= 2:
                self.groups.setdefault(s_index, []).append(tuple(dict.fromkeys(chain)))
            last = (end, entities)

        def owned(det: int, was_open: bool) -> int:
            """``self._owned`` after a possessive; what is owned, when a character, is its clause's subject ("Her
            dog Biscuit chased it": Biscuit, not Ella)."""
            before, opened = len(self.history), clause["open"]
            clause["open"] = was_open
            end = self._owned(toks, det, sentence, s_index, mention)
            if len(self.history) == before:
                clause["open"] = opened
            return end

        def bare_plural(i: int) -> int:
            """Animals or things with no determiner ("planted roses", "fed ducks"): a group "them" can mean."""
            noun = toks[i][0].lower()
            index = self._last_mentioned(lambda e: e.plural and noun in e.nouns)
            if index is None:
                index = self._add(Entity(f"the {noun}", "n", plural=True, nouns={noun}, description=noun,
                                         thing=noun in PLURAL_THINGS, new_in=s_index))  # fmt: skip
            mention((index,), i, i + 1)
            return i + 1

        quotes = [m.span() for m in QUOTE.finditer(sentence)]
        dialogue: list[tuple[int, str]] = []  # "I", "you" inside quotes: resolved once the speaker is known
        i = 0
        while i < len(toks):
            word = toks[i][0]
            lowered = word.lower()
            if lowered in SUBORDINATORS or i and re.search(r"[,;:]", _gap(sentence, toks[i - 1], toks[i])):
                clause["open"], clause["growing"] = True, False
            if lowered == "who" and last is not None and i and "," in _gap(sentence, toks[i - 1], toks[i]):
                clause.update(subject=set(last[1]), open=False, growing=False)  # "Hilda, who was taller than her,"
                i += 1
                continue
            if lowered in DIALOGUE_PRONOUNS and _inside(quotes, toks[i][1]):
                dialogue.append((toks[i][1], word))
                i += 1
                continue
            company = self._company_phrase(toks, i, s_index, present)
            if company is not None:
                end, entities = company
                if entities:
                    refs.append((toks[i][1], sentence[toks[i][1] : toks[end - 1][2]], entities))
                    mention(entities, i, end)
                i = end
                continue
            if lowered in PRONOUNS:
                gender, case = PRONOUNS[lowered]
                following = toks[i + 1][0].lower() if i + 1 < len(toks) else ""
                if case == "obj|poss":
                    ends_clause = i + 1 < len(toks) and re.search(r"[,;:.!?\"“”]", _gap(sentence, toks[i], toks[i + 1]))
                    case = "poss" if following and following not in NON_NOUNS and not ends_clause else "obj"
                if (
                    lowered == "it"
                    and following in ("is", "was", "'s")
                    and i + 2 < len(toks)
                    and toks[i + 2][0].lower() in EXPLETIVE_AFTER_IT
                ):
                    i += 1
                    continue
                if case == "subj|obj":  # "it": the object when its clause already has a subject ("a crow grabbed it")
                    case = "subj" if clause["open"] else "obj"
                after_preposition = bool(i) and toks[i - 1][0].lower() in PREPOSITIONS
                if gender == "p":
                    resolved = self._resolve_plural(s_index, clause["subject"] if case == "obj" else set())
                else:
                    resolved = self._resolve_singular(
                        gender, case.split("|")[0], s_index, clause["subject"], after_preposition
                    )
                was_open = clause["open"]
                if resolved:
                    refs.append((toks[i][1], word, resolved))
                    mention(resolved, i, i + 1)
                i += 1
                if case == "poss" and i < len(toks):
                    i = owned(i - 1, was_open)
                continue
            if lowered in ARTICLES or lowered in NUMBER_WORDS or lowered == "both":
                handled = self._determiner_phrase(toks, i, sentence, s_index, refs, last, mention)
                if handled is not None:
                    if toks[handled - 1][0].lower().endswith(("'s", "’s")):
                        handled = self._owned(toks, handled - 1, sentence, s_index, mention)
                    i = handled
                    continue
            pair = (self.groups.get(s_index) or [()])[-1]
            if lowered in RELATION_PLURALS and i and toks[i - 1][0].lower() in ("were", "are") and len(pair) == 2:
                self._relate(*pair, RELATION_PLURALS[lowered])  # "Omar and Yusuf were brothers"
            if PLURAL_NOUNS.get(lowered) == "n" and (last is None or last[0] != i):  # not "she watches"
                i = bare_plural(i)
                continue
            if word[0].isupper() and self._is_name(toks, i, sentence):
                end, name, gender = self._name_span(toks, i, sentence)
                was_open = clause["open"]
                index = self._find_named(name)
                if index is None:
                    titles = {TITLE_NOUNS[t[0].lower()] for t in toks[i:end] if t[0].lower() in TITLE_NOUNS}
                    index = self._add(Entity(name, gender, nouns=titles))
                mention((index,), i, end)
                i = end
                appositive = APPOSITIVE.match(sentence, toks[end - 1][2])
                if appositive:  # "Moss, a medium green square, ...": how Moss looks
                    entity = self.entities[index]
                    entity.description = entity.description or appositive.group(1)
                    head = next((w for w in appositive.group(1).lower().split()[1:] if w in CHARACTER_NOUNS), None)
                    if head is not None:  # "Pickles, an old grey horse": later "the horse", "it"
                        entity.nouns.add(head)
                        if entity.gender == "u" or CHARACTER_NOUNS[head] in ("m", "f"):
                            entity.gender = CHARACTER_NOUNS[head]  # "Sam, a tall woman": the noun beats the name
                    while i < len(toks) and toks[i][1] < appositive.end():
                        i += 1
                if toks[end - 1][0].endswith(("'s", "’s")):
                    i = owned(end - 1, was_open)
                continue
            i += 1
        if dialogue:
            refs = self._with_dialogue(s_index, quotes, refs, dialogue, present)
        return [(mention, entities) for _, mention, entities in refs], present

    def _relate(self, first: int, second: int, relation: str) -> None:
        """Each is the other's ``relation``: later "his brother" from either side is the other one."""
        self.entities[first].relatives[relation] = second
        self.entities[second].relatives[relation] = first

    def _company_phrase(self, toks: list[Token], i: int, s_index: int, present: list[int]) -> tuple[int, tuple[int, ...]] | None:
        """(end, entities) when ``toks[i]`` starts "the others", "the two of them" / "all three of them", "both of
        them" or "all of them"; None otherwise."""
        following = [t[0].lower() for t in toks[i : i + 4]]
        if following[:2] == ["the", "others"]:
            return i + 2, self._company(s_index, set(present))
        if following[1:3] == ["of", "them"] and following[0] == "both":  # the latest pair, as "they" would be
            pair = self._resolve_plural(s_index)
            return i + 3, pair if len(pair) == 2 else self._company(s_index, set(), 2)
        if following[1:3] == ["of", "them"] and following[0] == "all":
            return i + 3, self._company(s_index, set())
        if len(following) == 4 and following[0] in ("the", "all") and following[2:] == ["of", "them"]:
            count = NUMBER_WORDS.get(following[1], 0)
            if 2 <= count <= 4:
                return i + 4, self._company(s_index, set(), count)
        return None

    def _with_dialogue(self, s_index: int, quotes, refs, dialogue, present: list[int]):
        """``refs`` with the first- and second-person words of the quotes resolved: "I" is the speaker (the first
        character the words outside the quotes name), "you" the one spoken to (the next one named there, else the
        latest other character), each inserted where it stands in the sentence."""
        outside = [m for m in self.history if m.sentence == s_index and not _inside(quotes, m.offset)]
        speaker = outside[0].entities if outside else ()

        def listener(m: Mention) -> bool:
            return not set(m.entities) & set(speaker) and not any(self.entities[e].thing for e in m.entities)

        addressee = next((m.entities for m in outside[1:] if listener(m)), ())
        if not addressee:
            addressee = next((m.entities for m in reversed(self.history) if listener(m)
                              and not (m.sentence == s_index and _inside(quotes, m.offset))), ())  # fmt: skip
        placed = list(refs)
        for offset, word in dialogue:
            entities = speaker if DIALOGUE_PRONOUNS[word.lower()] == "first" else addressee
            if entities and len(placed) < MAX_REFERENCES:
                placed.append((offset, word, entities))
                present.extend(e for e in entities if e not in present)
        return sorted(placed, key=lambda p: p[0])

    def _owned(self, toks: list[Token], det: int, sentence: str, s_index: int, mention) -> int:
        """After "his"/"Tom's": "his dog" is a character of its own (new, or the dog already seen)."""
        phrase = self._noun_phrase(toks, det, sentence)
        if phrase is None:
            return det + 1
        end, mods, noun = phrase
        if noun in PLURAL_NOUNS:
            return end  # "his friends": too vague to become a character of its own
        description = f"{'an' if (mods or [noun])[0][0] in 'aeiou' else 'a'} {' '.join([*mods, noun])}"
        owner = self.history[-1].entities if self.history and self.history[-1].sentence == s_index else ()
        named = self._appositive_name(toks, end, sentence, comma=False)
        if named is not None:  # "his old horse, Clover", "her husband Karl"
            end, name, name_gender = named
            index = self._find_named(name)
            if index is None:
                gender = CHARACTER_NOUNS[noun] if CHARACTER_NOUNS[noun] != "u" else name_gender
                index = self._add(Entity(name, gender, nouns={noun}, description=description))
            if len(owner) == 1 and noun in SYMMETRIC_RELATIONS:
                self._relate(owner[0], index, noun)  # later "her cousin" from Meena's side is Ravi
            mention((index,), det + 1, end)
            return end
        mine = self.entities[owner[0]] if len(owner) == 1 else None
        index = mine.relatives.get(noun) if mine is not None else None
        if index is None:  # "his dog" is the dog already seen, but Meena's "her cousin" is not Meena
            index = self._last_mentioned(lambda e: noun in e.nouns and e is not mine)
        if index is None:
            index = self._add(Entity(f"the {noun}", CHARACTER_NOUNS[noun], nouns={noun}, description=description,
                                     thing=noun in THING_NOUNS, new_in=s_index, owned=True))  # fmt: skip
        mention((index,), det + 1, end)
        return end

    def _appositive_name(self, toks: list[Token], end: int, sentence: str, comma: bool = True) -> tuple[int, str, str] | None:
        """A name set off by a comma right after a noun phrase ("his old horse, Clover") or, with ``comma=False``,
        also one right after it ("her brother Felix")."""
        if end >= len(toks) or _gap(sentence, toks[end - 1], toks[end]).strip() not in ((",", "") if not comma else (",",)):
            return None
        if not toks[end][0][0].isupper() or not self._is_name(toks, end, sentence):
            return None
        return self._name_span(toks, end, sentence)

    def _determiner_phrase(self, toks, i, sentence, s_index, refs, last, mention) -> int | None:
        """Handle "a/an/two/the ... noun" at ``toks[i]``; the index after it, or None when it is no character."""
        phrase = self._noun_phrase(toks, i, sentence)
        if phrase is None:
            return None
        end, mods, noun = phrase
        det = toks[i][0].lower()
        text = _owner(sentence[toks[i][1] : toks[end - 1][2]])
        plural = noun in PLURAL_NOUNS
        if det == "both":  # "both girls" are "the two girls"
            if not plural:
                return None
            det, mods = "the", ["two", *mods]
        gender = PLURAL_NOUNS.get(noun) or CHARACTER_NOUNS[noun]
        if det == "the" or (det in NUMBER_WORDS and noun in COLLECTIVE):
            known = self._definite(noun, mods, plural, gender, s_index)
            if known:
                refs.append((toks[i][1], text, known))
                mention(known, i, end)
                return end
        if noun in THING_NOUNS and last is not None and last[0] == i - 1 and toks[i - 1][0].lower() in WORN:
            return end  # "a witch in a pointed hat": how she looks, not a thing of the story
        bare = " ".join([*(m for m in mods if m not in NUMBER_WORDS or det != "the"), noun])
        if plural:
            head = bare
        elif det == "the":
            head = f"{'an' if bare[0] in 'aeiou' else 'a'} {bare}"
        else:
            head = text[0].lower() + text[1:]
        description = f"{head} {self._tail(toks, end, sentence)}".strip()
        described = self._describes_previous(toks, i, sentence, last)
        if described is not None and det in ("a", "an") and not plural:
            entity = self.entities[described]
            entity.nouns.add(noun)
            entity.description = entity.description or description
            if entity.gender == "u" or entity.gender == "n" and gender != "n":
                entity.gender = gender
            return end
        if end + 1 < len(toks) and toks[end][0].lower() in ("named", "called") and toks[end + 1][0][0].isupper():
            name_end, name, name_gender = self._name_span(toks, end + 1, sentence)
            index = self._find_named(name)
            if index is None:
                entity = Entity(name, gender if gender != "u" else name_gender, nouns={noun}, description=description)
                index = self._add(entity)
            mention((index,), i, name_end)
            return name_end
        named = self._appositive_name(toks, end, sentence)
        if named is not None and plural:
            return end  # "The twins, Ana and Eva,": the names that follow are the group
        traits = {m for m in mods if m in AGE_TRAITS}
        if named is not None:  # "a horse, Clover"
            name_end, name, _ = named
            index = self._find_named(name)
            if index is None:
                index = self._add(Entity(name, gender, nouns={noun}, description=description, traits=traits))
            mention((index,), i, name_end)
            return name_end
        name = "the " + " ".join([*(m for m in mods if m not in NUMBER_WORDS), noun])
        index = self._add(Entity(name, gender, plural=plural, nouns={noun}, description=description, traits=traits,
                                 thing=noun in THING_NOUNS or noun in PLURAL_THINGS, new_in=-1 if det == "the" else s_index))  # fmt: skip
        mention((index,), i, end)
        return end

    def _definite(self, noun: str, mods: list[str], plural: bool, gender: str, s_index: int) -> tuple[int, ...]:
        """Who "the boy" / "the two friends" is, when the story already has them; () for someone new."""
        if plural:
            group = self._last_mentioned(lambda e: e.plural and noun in e.nouns)
            if group is None and gender != "n":  # "three children" ... "the kids"
                group = self._last_mentioned(lambda e: e.plural and e.gender != "n" and gender in (e.gender, "u"))
            if group is not None:
                return (group,)
            if noun in COLLECTIVE or gender in ("m", "f") or mods and mods[0] in NUMBER_WORDS:
                count = NUMBER_WORDS.get(mods[0], 2) if mods and mods[0] in NUMBER_WORDS else 2
                return self._recent_people(s_index + 1, count, gender, young=noun in YOUNG_PLURALS)
            return ()
        index = self._last_mentioned(lambda e: noun in e.nouns and not e.plural)
        if index is None and noun in GENERIC_PEOPLE:
            index = self._last_mentioned(lambda e: self._could_be(e, noun))
            if index is not None:
                self.entities[index].nouns.add(noun)  # "Mia" ... "the girl": now we know how Mia looks
        return () if index is None else (index,)

    @staticmethod
    def _could_be(entity: Entity, noun: str) -> bool:
        """Whether "the <noun>" can mean ``entity`` although it was never called that ("Mia" ... "the girl")."""
        gender = CHARACTER_NOUNS[noun]
        if entity.plural or entity.gender not in (gender, "u") or entity.gender == "u" and gender == "u":
            return False
        young = noun in YOUNG
        if young and entity.traits & {"old", "elderly"}:
            return False  # "the old king" is not "the boy"
        return not any((other in YOUNG) != young for other in entity.nouns if other in GENERIC_PEOPLE)

    def _describes_previous(self, toks: list[Token], i: int, sentence: str, last) -> int | None:
        """The character an indefinite noun phrase describes: "Tom, a small boy" or "Tom was a knight"."""
        if last is None or len(last[1]) != 1:
            return None
        end = last[0]
        gap = sentence[toks[end - 1][2] : toks[i][1]]
        if re.fullmatch(r"\s*,\s*", gap):
            return last[1][0]
        if re.fullmatch(r"\s+(is|was|became|seemed)\s+", gap, re.IGNORECASE):
            return last[1][0]
        return None
