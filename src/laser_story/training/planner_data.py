"""Training data for fine-tuning a small LLM (Gemma 3 270M) as the pack's planner, generated as code.

Thousands of labelled replies cannot be written by hand, so every example is built together with its gold
reply: stories from a grammar that tracks who each pronoun could mean and only writes one a careful reader
resolves, morph descriptions assembled from changes of a known kind, and expansion scenes laid out region by
region. Every gold reply goes through the pack's own schema and normaliser, so a label the planner would have
to repair never reaches training. Deterministic: an example depends only on its seed and index.
``python -m laser_story.training.planner_data`` writes the chat examples as JSON lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..llm.language import PRONOUNS, find_word, join_names, possessive, split_sentences, words
from ..llm.structured import schema_problem
from ..llm.tasks import expand, morph, story
from ..llm.tasks.base import tuned_messages

# The instruction the tuned model gets in place of the few-shot prompt, per call: the tasks' own constants, so
# what it is trained on is what the planner sends (``tasks.base.tuned_messages``).
TUNED_INSTRUCTIONS = {
    "story": story.TUNED_INSTRUCTION,
    "morph": morph.TUNED_INSTRUCTION,
    "expand_global": expand.TUNED_GLOBAL,
    "expand_local": expand.TUNED_LOCAL,
}
STORY_KEY, MORPH_KEY, EXPAND_KEY, SHUFFLE_KEY = 1, 2, 3, 4
ATTEMPTS = 50


def _rng(seed: int, index: int, task: int, attempt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, index, task, attempt])


def _pick(rng: np.random.Generator, items: Any) -> Any:
    return items[int(rng.integers(len(items)))]


def _weighted(rng: np.random.Generator, options: list[tuple[float, Any]]) -> Any:
    weights = np.array([w for w, _ in options], dtype=float)
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][1]


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- story: the cast ------------------------------------------------------------------------------
FEMALE_NAMES = """Amara Beatriz Camila Daria Elif Farah Greta Hana Ines Jana Keiko Leila Maren Nadia Olga Paloma
    Rania Selma Talia Uma Vera Wanda Ximena Yara Zainab Alma Bianca Celia Dina Edith Fiona Gemma Hilda Isla Kira
    Lena Mira Nell Orla Petra Rhea Sofia Tessa Una Vivian Willa Zelda Ada Cora""".split()
MALE_NAMES = """Aaron Bruno Caleb Dmitri Emil Felix Gustav Hamid Igor Jonas Kofi Lars Mateo Nikolai Otto Pavel
    Quentin Rafael Stefan Tariq Umar Viktor Wesley Yusuf Zane Anton Bastian Cyrus Dario Elias Fabian Gideon Hector
    Ivan Joel Karim Lucas Milo Nolan Oscar Pedro Rohan Silas Tobias Ulrich Vincent Walter Xavier Yosef Ziad""".split()
# Names that do not tell the gender: the story says it when it introduces them.
NEUTRAL_NAMES = """Alex Sam Jordan Robin Casey Kim Taylor Charlie Jamie Riley Morgan Quinn Avery Rowan Sasha Jesse
    Dana Kai""".split()
SURNAMES = """Novak Haddad Lindqvist Okafor Moreno Tanaka Kowalski Fischer Rossi Dubois Petrov Nakamura Schmidt
    Alvarez Kaur Mensah""".split()
TITLES = {"Mr.": "m", "Mrs.": "f", "Ms.": "f"}
ROLES = ("baker", "teacher", "doctor", "librarian", "gardener", "painter", "shopkeeper", "farmer")
ANIMAL_NAMES = """Rex Biscuit Pepper Whiskers Bolt Coco Ziggy Patch Mochi Pip Nugget Button Socks Pickles Waffles
    Noodle Sprout Tofu Bandit Cinnamon Maple Pudding Snowball Domino Pebble Acorn""".split()
# (look, what it adds as a possible "it"/"they" antecedent, the gender it suits or "")
KID_LOOKS = (
    ("in a green coat", "n", ""), ("with red hair", "", ""), ("with curly hair", "", ""),
    ("in a yellow raincoat", "n", ""), ("with a blue backpack", "n", ""), ("in a striped shirt", "n", ""),
    ("with glasses", "p", ""), ("in a straw hat", "n", ""), ("with a long braid", "n", "f"),
    ("in red boots", "p", ""), ("with freckles", "p", ""), ("in a purple scarf", "n", ""),
)  # fmt: skip
ADULT_LOOKS = (
    ("with a grey beard", "n", "m"), ("in a white apron", "n", ""), ("with a walking stick", "n", ""),
    ("in a long blue dress", "n", "f"), ("in a dark suit", "n", "m"), ("with silver hair", "", ""),
    ("in a woolly jumper", "n", ""), ("with round glasses", "p", ""),
)  # fmt: skip
# (introduction, registry name, every definite description that fits, gender, young, antecedent the phrase adds)
STRANGERS = (
    ("an old fisherman", "the fisherman", ("fisherman", "old man", "man"), "m", False, ""),
    ("an old woman with a cane", "the old woman", ("old woman", "woman"), "f", False, "n"),
    ("a tall man in a grey coat", "the tall man", ("tall man", "man"), "m", False, "n"),
    ("a young woman in a yellow dress", "the young woman", ("young woman", "woman"), "f", False, "n"),
    ("a little girl in a red coat", "the little girl", ("little girl", "girl"), "f", True, "n"),
    ("a small boy in a blue cap", "the small boy", ("small boy", "boy"), "m", True, "n"),
    ("a policeman", "the policeman", ("policeman", "man"), "m", False, ""),
    ("a policewoman", "the policewoman", ("policewoman", "woman"), "f", False, ""),
    ("a waitress in a green apron", "the waitress", ("waitress", "woman"), "f", False, "n"),
    ("a postman with a heavy bag", "the postman", ("postman", "man"), "m", False, "n"),
    ("an old king", "the king", ("king", "old man", "man"), "m", False, ""),
    ("a young queen", "the queen", ("queen", "woman"), "f", False, ""),
    ("a princess in a silver crown", "the princess", ("princess", "girl"), "f", True, "n"),
    ("a wizard with a long beard", "the wizard", ("wizard", "old man", "man"), "m", False, "n"),
    ("a witch in a pointed hat", "the witch", ("witch", "woman"), "f", False, "n"),
    ("a grandmother with silver hair", "the grandmother", ("grandmother", "old woman", "woman"), "f", False, ""),
    ("a grandfather with a walking stick", "the grandfather", ("grandfather", "old man", "man"), "m", False, "n"),
    ("a fireman in a yellow helmet", "the fireman", ("fireman", "man"), "m", False, "n"),
    ("a lady in a long dress", "the lady", ("lady", "woman"), "f", False, "n"),
    ("a gentleman in a top hat", "the gentleman", ("gentleman", "man"), "m", False, "n"),
)
# Species: adjectives, and the words their templates use; "<y.sound>" and friends in a template become these.
ANIMALS = {
    "dog": (("small brown", "big black", "fluffy white", "spotted"),
            {"sound": "barked", "moved": "ran", "coat": "[soft fur]", "food": "[a bone]"},
            ("{y} wagged {y:p} [tail] happily.", "{y} fetched [a stick] for {a:o}.",
             "{y} dug [a hole] under [the fence].")),
    "cat": (("grey", "black", "ginger", "striped"),
            {"sound": "meowed", "moved": "ran", "coat": "[soft fur]", "food": "[some fish]"},
            ("{y} jumped onto {a:p} [lap].", "{y} chased [a ball] of [wool].", "{y} licked {y:p} [paws|p] clean.")),
    "fox": (("red", "small", "white"),
            {"sound": "yelped", "moved": "ran", "coat": "[thick fur]", "food": "[a piece] of [bread]"},
            ("{y} watched {a:o} from behind [a tree].", "{y} swished {y:p} [bushy tail].")),
    "rabbit": (("white", "brown", "little grey"),
               {"sound": "squeaked", "moved": "hopped", "coat": "[soft fur]", "food": "[a carrot]"},
               ("{y} twitched {y:p} [nose].", "{y} hopped into {a:p} [arms|p].")),
    "owl": (("brown", "white", "sleepy"),
            {"sound": "hooted", "moved": "flew", "coat": "[soft feathers|p]", "food": "[a worm]"},
            ("{y} blinked {y:p} [big eyes|p].", "{y} landed on {a:p} [shoulder].")),
    "horse": (("brown", "white", "old grey"),
              {"sound": "neighed", "moved": "trotted", "coat": "[shiny mane]", "food": "[an apple]"},
              ("{a} rode {y:o} across [the field].", "{y} nuzzled {a:p} [hand].")),
    "parrot": (("green", "bright red"),
               {"sound": "squawked", "moved": "flew", "coat": "[bright feathers|p]", "food": "[a cracker]"},
               ("{y} sat on {a:p} [shoulder].", "{y} repeated {a:p} [words|p].")),
    "goat": (("white", "little brown"),
             {"sound": "bleated", "moved": "trotted", "coat": "[rough coat]", "food": "[some hay]"},
             ("{y} tried to eat {a:p} [scarf].", "{y} climbed onto [a big rock].")),
    "hamster": (("tiny golden", "fat little"),
                {"sound": "squeaked", "moved": "scurried", "coat": "[soft fur]", "food": "[a seed]"},
                ("{y} stuffed [seeds|p] into {y:p} [cheeks|p].", "{y} ran inside [a wheel].")),
    "frog": (("green", "little spotted"),
             {"sound": "croaked", "moved": "hopped", "coat": "[smooth skin]", "food": "[a fly]"},
             ("{y} jumped into [the pond].", "{y} sat on [a lily pad].")),
}  # fmt: skip
# Objects: adjectives, outdoor only, and templates of their own (what people do with them, what they do).
OBJECTS = {
    "kite": (("red", "blue", "big yellow"), True,
             ("{a} flew {x:o} high above [the trees|p].", "{a} pulled on {x:p} [string] gently.",
              "{x*} rose higher and higher.", "{x*} got stuck in [a tall tree].", "{x*} danced in [the wind].")),
    "ball": (("red", "striped", "small rubber"), False,
             ("{a} kicked {x:o} across [the grass].", "{a} threw {x:o} to {b:o}.", "{x*} rolled under [a bench].",
              "{x*} bounced into [the bushes|p].")),
    "lamp": (("small", "old brass"), False,
             ("{a} switched {x:o} on.", "{a} carried {x:o} to [the window].", "{x*} glowed softly in [the dark].",
              "{x*} flickered and went out.")),
    "balloon": (("red", "silver", "big green"), False,
                ("{a} held {x:o} tightly.", "{a} tied {x:o} to [a chair].", "{x*} floated up into [the sky].",
                 "{x*} popped with [a loud bang].")),
    "umbrella": (("black", "yellow", "spotted"), False,
                 ("{a} opened {x:o} above {a:p} [head].", "{a} shared {x:o} with {b:o}.",
                  "{x*} flew away in [the wind].")),
    "book": (("old", "thick blue", "tiny"), False,
             ("{a} read {x:o} under [a tree].", "{a} turned {x:p} [pages|p] slowly.", "{x*} fell off [the shelf].")),
    "lantern": (("paper", "old tin"), False,
                ("{a} lit {x:o} with [a match].", "{a} hung {x:o} on [a hook].", "{x*} swung in [the breeze].",
                 "{x*} lit up [the path].")),
    "bicycle": (("blue", "old", "shiny red"), True,
                ("{a} rode {x:o} along [the road].", "{a} fixed {x:p} [chain].", "{x*} had [a flat tyre].")),
    "map": (("old", "crumpled"), False,
            ("{a} unfolded {x:o} on [the ground].", "{a} studied {x:o} carefully.", "{x*} showed [a hidden path].")),
    "boat": (("little wooden", "red"), True,
             ("{a} pushed {x:o} into [the water].", "{x*} drifted slowly away.", "{x*} rocked on [the waves|p].")),
    "cake": (("chocolate", "strawberry", "big birthday"), False,
             ("{a} cut {x:o} into [slices|p].", "{a} carried {x:o} to [the table].", "{x*} smelled wonderful.")),
    "key": (("golden", "rusty", "tiny silver"), False,
            ("{a} turned {x:o} in [the lock].", "{a} put {x:o} in {a:p} [pocket].", "{x*} opened [an old chest].")),
    "hat": (("straw", "woolly", "tall black"), False,
            ("{a} put {x:o} on.", "{a} brushed [the dust] off {x:o}.", "{x*} blew away in [the wind].")),
    "guitar": (("old", "shiny"), False,
               ("{a} played {x:o} softly.", "{a} tuned {x:o} carefully.", "{x*} had [a broken string].")),
    "camera": (("old", "small black"), False,
               ("{a} took [a photo] with {x:o}.", "{a} pointed {x:o} at {b:o}.", "{x*} clicked and flashed.")),
    "teddy bear": (("brown", "worn"), False,
                   ("{a} hugged {x:o} tightly.", "{a} sat {x:o} on [a chair].", "{x*} had [a missing button].")),
}  # fmt: skip
# Groups that are one character ("three children", "the ducks"): (introductions, nouns, kind)
GROUPS = (
    (("three children", "four kids", "a few children"), ("children", "kids"), "people"),
    (("five students", "a few students"), ("students",), "people"),
    (("five ducks", "a few ducks"), ("ducks",), "flock"),
    (("three puppies", "four puppies"), ("puppies",), "flock"),
)
FLOCK_WORDS = {
    "ducks": {"sound": "quacked", "moved": "waddled", "coat": "[feathers|p]", "food": "[some bread]"},
    "puppies": {"sound": "yapped", "moved": "tumbled", "coat": "[soft fur]", "food": "[some milk]"},
}
# (place, preposition, indoors)
SETTINGS = (
    ("the park", "in", False), ("the kitchen", "in", True), ("the beach", "on", False),
    ("the forest", "in", False), ("the garden", "in", False), ("the library", "in", True),
    ("the market", "at", False), ("the river", "by", False), ("the lake", "by", False), ("the farm", "on", False),
    ("the hill", "on", False), ("the playground", "at", False), ("the classroom", "in", True),
    ("the living room", "in", True), ("the meadow", "in", False), ("the harbour", "at", False),
    ("the village square", "in", False), ("the museum", "in", True), ("the backyard", "in", False),
    ("the attic", "in", True), ("the barn", "in", True), ("the campsite", "at", False),
    ("the train station", "at", True), ("the bakery", "in", True), ("the zoo", "at", False),
    ("the schoolyard", "in", False), ("the orchard", "in", False), ("the snowy field", "in", False),
)  # fmt: skip
SENTENCE_OPENERS = ("Later, ", "Then ", "Soon ", "After a while, ", "That evening, ", "The next morning, ",
                    "Suddenly, ", "A moment later, ")
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}
SUBJECT_PRONOUNS = {
    "m": {"s": "he", "o": "him", "p": "his", "h": "his"},
    "f": {"s": "she", "o": "her", "p": "her", "h": "hers"},
    "n": {"s": "it", "o": "it", "p": "its"},
    "p": {"s": "they", "o": "them", "p": "their", "h": "theirs"},
}
# Words that always stand for someone: a template's fixed text must never contain one, so every such word in a
# sentence is a reference the generator placed and labelled.
REFERENCE_WORDS = frozenset(PRONOUNS) | {"i", "me", "you", "we", "us", "our", "my", "your", "mine", "yours",
                                         "both", "others"}


@dataclasses.dataclass(eq=False)
class _Entity:
    """A character or thing of one story; identity is the object, so sets of entities are sets of characters."""

    kind: str  # person, animal, object, people (a group of people) or flock (a group of animals)
    gender: str  # pronoun class: m, f, n ("it") or p ("they")
    registry: str  # the registry name every refers_to uses
    nouns: frozenset[str]  # every definite description that fits it: "girl"; "fisherman", "old man", "man"
    name: str = ""  # proper name; "" when unnamed
    noun: str = ""  # what an introduction calls it: "girl", "baker", "dog", "kite"
    base: str = ""  # a person's plain noun for the description: "girl", "woman"
    phrase: str = ""  # an unnamed person's or group's introduction: "an old fisherman", "three children"
    look: tuple[str, str, str] = ("", "", "")
    adjective: str = ""
    clear: bool = True  # the name alone tells the gender
    young: bool = False
    owner: _Entity | None = None
    words: dict[str, str] = dataclasses.field(default_factory=dict)
    lines: tuple[str, ...] = ()
    distractor: str = ""  # what an unnamed person's introduction adds as an antecedent
    outdoor: bool = False

    @property
    def animate(self) -> bool:
        return self.kind in ("person", "animal")


@dataclasses.dataclass(frozen=True)
class _Known:
    description: str
    established: frozenset[str]  # the descriptions the text has given it so far ("the girl" after "a girl named")


@dataclasses.dataclass(frozen=True)
class _Intro:
    """One way to introduce a character: the words, the registry description they give, what they establish."""

    text: str
    description: str
    established: frozenset[str] | set[str] = frozenset()
    distractor: str = ""
    owned: bool = False  # the text follows the owner's possessive pronoun


@dataclasses.dataclass(frozen=True)
class _Mention:
    """Something a later pronoun could mean: characters, or a plain noun of the text (``distractor`` n or p)."""

    entities: frozenset = frozenset()
    counted: bool = True  # False for "I" and "you": a reader does not take them as antecedents in the sentence
    distractor: str = ""


@dataclasses.dataclass
class _Sentence:
    index: int
    text: str = ""
    resolved: str = ""
    mentions: list[_Mention] = dataclasses.field(default_factory=list)
    refs: list[tuple[int, int, str, tuple[_Entity, ...]]] = dataclasses.field(default_factory=list)
    expletives: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    subject: frozenset | None = None
    clause: frozenset = frozenset()
    subject_end: int = -1  # where the last subject ended: "Tom and Mia" is one subject
    setting: tuple[str, str, bool] | None = None

    def at_start(self) -> bool:
        """At the start of the sentence or of a quotation, where a word is capitalised."""
        return not self.text.strip() or (self.text.count('"') % 2 == 1 and self.text.endswith('"'))

    def write(self, text: str, resolved: str | None = None) -> None:
        self.text += text
        self.resolved += text if resolved is None else resolved

    def refer(self, text: str, targets: tuple[_Entity, ...], resolved: str) -> None:
        if self.at_start():
            text, resolved = _capitalise(text), _capitalise(resolved)
        self.refs.append((len(self.text), len(self.text) + len(text), text, targets))
        self.write(text, resolved)

    def mention(self, entities: frozenset, case: str, counted: bool = True, start: int = -1) -> None:
        """Record a mention that starts at ``start``; a subject joined to the previous one by "and" adds to it."""
        self.mentions.append(_Mention(entities, counted))
        if case == "s" and counted:
            joined = self.subject_end >= 0 and self.text[self.subject_end : start] == " and "
            self.clause = self.clause | entities if joined else entities
            if self.subject is None or (joined and self.subject == self.clause - entities):
                self.subject = self.clause
            self.subject_end = len(self.text)


# --- story: templates ------------------------------------------------------------------------------
# A template is a sentence with slots: {a} a role as subject, {a:o} object, {a:p} possessive ("his bag"),
# {a:h} absolute possessive ("hers"), {a:I} / {a:me} / {a:you} in dialogue; {a*} must be a pronoun or a
# description ("he", "the girl"), never the name again. Roles: a b c people, n m people or animals, y an
# animal, x an object, g a set of two or more (they), r everyone but a (the others), k a group of people, d a
# group of animals. [a bench] is a plain noun a pronoun could mean ([shoes|p] a plural one): every noun of a
# template is bracketed so that the pronoun rules see it. {in_place} / {to_place} set the scene, {here} says it.
ROLE_KINDS = {"a": "P", "b": "P", "c": "P", "n": "N", "m": "N", "y": "A", "x": "O", "g": "S", "r": "R", "k": "K",
              "d": "D"}
OPENING = (
    "{n} was playing {in_place}.", "{a} walked {to_place} [one morning].", "{g} met {in_place}.",
    "{a} met {b:o} {in_place}.", "{g} spent [the afternoon] {in_place}.", "{a} took {y:o} for [a walk] {in_place}.",
    "{a} found {x:o} {in_place}.", "On [a sunny morning], {a} went {to_place}.", "{a} was waiting for {b:o} {in_place}.",
    "{y} lived {in_place}.", "{It} was [a quiet morning] {in_place}.", "{g} walked {to_place} together.",
    "{a} and {y} went {to_place}.", "{a} was reading [a book] {in_place} when {b} arrived.",
    "{a} was sitting {in_place} with {y:o}.", "{n} woke up early and went {to_place}.",
    "{k} gathered {in_place}.", "{k} and {a} spent [the morning] {in_place}.", "{a} took {d:o} {to_place}.",
)
CATEGORIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "move": (0.5, (
        "Later, {g} went {to_place}.", "{a} ran {to_place}.", "After [lunch], {g} walked {to_place}.",
        "{n} followed {m:o} {to_place}.", "{a} took {x:o} {to_place}.", "{k} followed {a:o} {to_place}.",
        "Then {g} hurried {to_place} before [the rain] started.",
    )),
    "solo": (1.0, (
        "{a} sat down on [a bench] and opened {a:p} [bag].", "{a} laughed so hard that {a*} had to sit down.",
        "{a} was tired, so {a*} lay down on [the grass].", "{a} put on {a:p} [favourite hat] and hummed [a song].",
        "{a} drew [a picture] of [a lighthouse].", "{a} looked around but saw nobody.",
        "{a} took off {a:p} [coat] because {a*} felt warm.", "{a} found [a coin] in {a:p} [pocket].",
        "{a} wanted to go home, but {a*} kept walking.", "{a} smiled and waved.",
        "When {a} heard [a loud noise], {a*} turned around.", "{a}, who loved [the rain], jumped in [the puddles|p].",
        "{a}, who was very hungry, ate [a big sandwich].", "{a:p} [shoes|p] were muddy, but {a} did not mind.",
        "{a} yawned and rubbed {a:p} [eyes|p].", "{a} counted [the boats|p] on [the water].",
        "{a} tied {a:p} [shoelaces|p] and stood up.", "{a} picked [a flower] and smelled [the petals|p].",
        "{a} was so happy that {a*} started to sing.", "[The blue scarf] on [the bench] was {a:h}.",
        "{a} knew at once that [the red bag] was {a:h}.", "{a:p} [hands|p] were cold, so {a} put on [gloves|p].",
        "{a} wrote [a long letter] at [the table].", "{n} fell asleep {here}.",
    )),
    "pair": (1.4, (
        "{a} gave {b:o} [a shell].", "{a} waved at {b:o}, and {b} waved back.",
        "{a} showed {b:o} [a drawing] of [a ship].", "{a} helped {b:o} carry [a heavy box].",
        "{a} asked {b:o} for [a pencil].", "{a} told {b:o} [a funny story], and {b} laughed.",
        "{b} looked sad, so {a} gave {b:o} [a hug].", "{a} sat next to {b:o} and shared {a:p} [lunch].",
        "{a} borrowed {b:p} [umbrella].", "While {a} read [a book], {b} painted [a picture].",
        "{a} waited while {b} bought [some bread].", "{a} thanked {b:o} for [the gift].",
        "{a} pointed at [a bird], and {b} looked up.", "{a} waved at {b:o}, who was sitting on [a wall].",
        "{a}, who was taller than {b:o}, reached [the top shelf].", "{b} fell, and {a} helped {b:o} up.",
        "{a} found {b:p} [glove] on [the path].", "{a} laughed at {b:p} [joke].",
        "{a} and {b} played [a game] of [chess].", "{a} called {b:o}, but {b*} did not answer.",
        "{a} taught {b:o} how to whistle.", "{a} told {b:o} that {a*} was hungry.",
        "When {b} came back, {a} was still waiting.", "{a} held {b:p} [hand] tightly.",
        "{a} was older than {b:o}, so {a*} went first.", "{b:p} [hat] blew away, and {a} ran after [the hat].",
        "{n} ran after {m:o} {here}.",
    )),
    "trio": (0.6, (
        "{a} introduced {b:o} to {c:o}.", "{a} gave {b:o} and {c:o} [an apple] each.",
        "{a} and {b} waited for {c:o}.", "While {a} and {b} talked, {c} fell asleep.",
    )),
    "set": (1.3, (
        "{g} sat on [the grass] and ate {g:p} [sandwiches|p].", "{g} laughed together.",
        "{g} built [a tall tower] of [blocks|p].", "{g} played [a game] until [sunset].",
        "{g} were tired, so {g*} went home.", "{a} watched {g:o} from [a window].", "{g} thanked {a:o}.",
        "{g} looked at {x:o} in [surprise].", "{g} followed {y:o} along [the path].",
        "{g} decided to have [a picnic].", "{g} sang [a song] together.", "{a} smiled at {g:o}.",
        "{g} ran to {a:o}, and {a} hugged {g:o}.", '{a} told {g:o}, "{a:I} have [a surprise] for {g:you}."',
        "{g} cheered when {a} won [the race].", "{g} hid behind [a big tree] and waited.",
        "When {g} got home, {g*} were very hungry.", "{g} went home together.",
    )),
    "rest": (0.9, (
        "{a} stayed behind while {r} went ahead.", "{a} waited by [the gate] while {r} explored.",
        "{a} hid, and {r} tried to find {a:o}.", "{a} was too tired to walk, so {r} carried {a:p} [bags|p].",
    )),
    "people": (2.5, (
        "{k} played [a game] {here}.", "{a} smiled at {k:o}.", "{k} waved at {a:o}.", "{a} asked {k:o} to sit down.",
        "{k} sat down and opened {k:p} [books|p].", "{k} laughed at {a:p} [joke].", "{a} read [a story] to {k:o}.",
        "{k} ran to {a:o} when {k*} saw {a:o}.", '{a} told {k:o}, "{a:I} have [a surprise] for {k:you}."',
        "{k} were hungry, so {a} gave {k:o} [some bread].", "{k} followed {a:o} in [a long line].",
    )),
    "flock": (2.5, (
        "{a} fed {d:o} <d.food>.", "{d} followed {a:o} along [the path].", "{d} <d.sound> when {a} came closer.",
        "{a} laughed as {d} <d.moved> around {a:o}.", "{d} were hungry, so {a} gave {d:o} <d.food>.",
        "{d} shook {d:p} <d.coat> and <d.moved> away.",
    )),
    "animal": (1.3, (
        "{y} <y.sound> at [a squirrel].", "{y} <y.moved> after {a:o}.", "{a} gave {y:o} <y.food>.",
        "{a} stroked {y:p} <y.coat>.", "{y} curled up next to {a:o} and fell asleep.",
        "{a} laughed when {y} <y.sound>.", "{y} hid under [a bush].",
        "{y} <y.moved> across [the grass] and came back to {a:o}.", "{a} watched {y:o} chase [a butterfly].",
        "{y}, which was very hungry, ate <y.food>.", "{y} sniffed {a:p} [shoes|p].",
        "{a} called {y:o}, and {y*} <y.moved> over.",
    )),
    "thing": (1.4, (
        "{a} picked {x:o} up and looked at {x*:o} closely.", "{a} showed {x:o} to {b:o}.",
        "{a} gave {x:o} to {b:o}.", "{a} put {x:o} on [the table].", "{a} found {x:o}, which was lying under [a tree].",
        "{a} dropped {x:o}, and {b} picked {x*:o} up.", "{x*} was {a:h}.", "{a} said that {x*} was {a:h}.",
        "{a}, who was holding {x:o}, waved at {b:o}.", '"{a:I} found {x:o}," {a} said.',
        '{a} told {b:o}, "{a:I} made {x:o} for {b:you}."', "{b} looked at {x:o} and smiled.",
        "{a} hid {x:o} behind {a:p} [back].", "{a} cleaned {x:o} with [a cloth].",
    )),
    "talk": (0.7, (
        '"{a:I} like [this place]," {a} told {b:o}.', '{a} told {b:o}, "{a:I} can help {b:you}."',
        '{a} asked {b:o}, "Can {b:you} help {a:me}?"', '"Look at {a:me}," {a} shouted to {b:o}.',
        '"{b:you} saved {a:me}," {a} said to {b:o}.', '"Thank {b:you}," {a} said to {b:o}.',
        '"Come with {a:me}," {a} told {b:o}.', '"{a:I} saw {y:o} over there," {a} told {b:o}.',
        '{a} whispered to {b:o}, "{a:I} heard [a strange noise]."', '"{a:I} will race {b:you}," {a} told {b:o}.',
        '{a} asked {b:o}, "Will {b:you} play with {a:me}?"', '"{a:I} had [a lovely day]," {a} said.',
    )),
    "ending": (0.4, (
        "That night, {a} dreamed about {x:o}.", "At [the end] of [the day], {g} were happy.",
        "{a} smiled all [the way] home.",
    )),
}
ENTITY_LINES = 1.5  # weight of the templates a species or an object brings along
TOKEN = re.compile(r"(\{[^}]*\}|\[[^\]]*\])")
SLOT = re.compile(r"\{([a-z])(\*?)(?::(o|p|h|I|me|you))?\}")
WORD_SLOT = re.compile(r"<([a-z])\.(\w+)>")


@dataclasses.dataclass(frozen=True)
class _Template:
    text: str
    first: dict[str, tuple[str, bool]]  # role -> (case of its first slot, starred)

    @property
    def roles(self) -> list[str]:
        return list(self.first)


def _lint(text: str) -> None:
    """A template's fixed text names nobody: no pronoun, no unbracketed noun, and a bracket after {a:p}."""
    for part in TOKEN.split(WORD_SLOT.sub("[thing]", text)):
        if part.startswith("{"):
            continue
        plain = part[1:-1].split("|")[0] if part.startswith("[") else part
        bad = [w for w, _, _ in words(plain) if w.lower() in REFERENCE_WORDS]
        if bad or (not part.startswith("[") and any(w.lower() in ("a", "an", "the", "some") for w, _, _ in words(part))):
            raise ValueError(f"template {text!r}: {part!r} names someone or hides a noun")
    for match in re.finditer(r":p\}", text):
        if not text[match.end() :].startswith((" [", " <")):
            raise ValueError(f"template {text!r}: a possessive slot must be followed by a bracketed noun")


def _template(text: str) -> _Template:
    first: dict[str, tuple[str, bool]] = {}
    for match in SLOT.finditer(text):
        first.setdefault(match.group(1), (match.group(3) or "s", bool(match.group(2))))
    return _Template(text, first)


@cache
def _templates() -> dict[str, tuple[_Template, ...]]:
    """The parsed templates by category (the openers under "open"), checked once."""
    texts = {"open": OPENING, **{name: lines for name, (_, lines) in CATEGORIES.items()}}
    lines = [line for table in (ANIMALS, OBJECTS) for *_, own in table.values() for line in own]
    for text in [*(t for group in texts.values() for t in group), *lines]:
        _lint(text)
    for value in [v for w in (*(w for _, w, _ in ANIMALS.values()), *FLOCK_WORDS.values()) for v in w.values()]:
        _lint(value)
    return {name: tuple(_template(t) for t in group) for name, group in texts.items()}


@cache
def _own_templates(lines: tuple[str, ...]) -> tuple[_Template, ...]:
    return tuple(_template(t) for t in lines)


# --- story: the cast -------------------------------------------------------------------------------
def _person(rng: np.random.Generator, used: set[str], young: bool | None = None, gender: str = "") -> _Entity:
    gender = gender or ("f" if rng.random() < 0.5 else "m")
    kind = _weighted(rng, [(0.45, "kid"), (0.12, "neutral"), (0.12, "adult"), (0.08, "titled"), (0.23, "stranger")])
    if young is not None:
        kind = _pick(rng, ("kid", "neutral")) if young else _pick(rng, ("adult", "titled", "stranger"))
    if kind == "stranger":
        phrase, registry, nouns, gender, is_young, distractor = _pick(rng, STRANGERS)
        if young is None or is_young == young:
            return _Entity("person", gender, registry, frozenset(nouns), noun=nouns[0], base=nouns[-1], phrase=phrase,
                           young=is_young, distractor=distractor)
        kind = "adult"
    names = {"f": FEMALE_NAMES, "m": MALE_NAMES}[gender]
    if kind == "neutral":
        names = NEUTRAL_NAMES
    name = _pick(rng, [n for n in names if n not in used])
    used.add(name)
    is_young = kind in ("kid", "neutral")
    looks = [look for look in (KID_LOOKS if is_young else ADULT_LOOKS) if look[2] in ("", gender)]
    look = _pick(rng, looks) if rng.random() < 0.6 else ("", "", "")
    if is_young:
        base = "girl" if gender == "f" else "boy"
        return _Entity("person", gender, name, frozenset({base}), name=name, noun=base, base=base, look=look,
                       clear=kind == "kid", young=True)
    base = "woman" if gender == "f" else "man"
    if kind == "titled":
        title = _pick(rng, [t for t, g in TITLES.items() if g == gender])
        surname = _pick(rng, [s for s in SURNAMES if s not in used])
        used.add(surname)
        role = _pick(rng, ROLES)
        return _Entity("person", gender, f"{title} {surname}", frozenset({base, role}), name=f"{title} {surname}",
                       noun=role, base=base, look=look)
    noun = f"old {base}" if rng.random() < 0.3 else base
    return _Entity("person", gender, name, frozenset({noun, base}), name=name, noun=noun, base=base, look=look)


def _animal(rng: np.random.Generator, used: set[str], species: str) -> _Entity:
    adjectives, animal_words, lines = ANIMALS[species]
    adjective = _pick(rng, adjectives) if rng.random() < 0.7 else ""
    if rng.random() < 0.55:
        name = _pick(rng, [n for n in ANIMAL_NAMES if n not in used])
        used.add(name)
        return _Entity("animal", "n", name, frozenset({species}), name=name, noun=species, adjective=adjective,
                       words=animal_words, lines=lines)
    return _Entity("animal", "n", f"the {species}", frozenset({species}), noun=species, adjective=adjective,
                   words=animal_words, lines=lines)


def _conflicts(entity: _Entity, cast: list[_Entity]) -> bool:
    """An unnamed character whose description another character also fits could not be told apart."""
    for other in cast:
        for a, b in ((entity, other), (other, entity)):
            if not a.name and a.kind in ("person", "animal") and a.noun in b.nouns:
                return True
        if entity.registry.lower() == other.registry.lower():
            return True
    return False


def _sample_cast(rng: np.random.Generator) -> list[_Entity]:
    used: set[str] = set()
    cast: list[_Entity] = []
    if rng.random() < 0.12:
        phrases, nouns, kind = _pick(rng, GROUPS)
        cast.append(_Entity(kind, "p", f"the {nouns[0]}", frozenset(nouns), noun=nouns[0], phrase=_pick(rng, phrases),
                            words=FLOCK_WORDS.get(nouns[0], {})))
        cast.append(_person(rng, used, young=False if kind == "people" else None))
    else:
        count = _weighted(rng, [(0.12, 1), (0.38, 2), (0.3, 3), (0.2, 4)])
        animals = min(count - 1, _weighted(rng, [(0.6, 0), (0.32, 1), (0.08, 2)]))
        species = [str(s) for s in rng.permutation(list(ANIMALS))[:animals]]
        # sisters, brothers, a class of boys: the stories where only names and "the girls" tell them apart
        siblings = count - animals >= 2 and rng.random() < 0.3
        gender = _pick(rng, ("f", "m")) if siblings else ""
        while len(cast) < count - animals:
            person = _person(rng, used, young=True if siblings else None, gender=gender)
            if not _conflicts(person, cast):
                cast.append(person)
        owners = list(cast)
        for kind in species:
            animal = _animal(rng, used, kind)
            if not _conflicts(animal, cast):
                animal.owner = _pick(rng, owners) if rng.random() < 0.6 else None
                cast.append(animal)
    people = [e for e in cast if e.kind == "person"]
    for noun in [str(s) for s in rng.permutation(list(OBJECTS))[: _weighted(rng, [(0.45, 0), (0.4, 1), (0.15, 2)])]]:
        adjectives, outdoor, lines = OBJECTS[noun]
        cast.append(_Entity("object", "n", f"the {noun}", frozenset({noun}), noun=noun, lines=lines, outdoor=outdoor,
                            adjective=_pick(rng, adjectives), owner=_pick(rng, people) if rng.random() < 0.4 else None))
    return cast


# --- story: telling ---------------------------------------------------------------------------------
class _UnfinishedError(Exception):
    """This draw of a story could not be finished; the next attempt draws another."""


def _fits(entity: _Entity, kind: str) -> bool:
    return {"P": entity.kind == "person", "N": entity.animate, "A": entity.kind == "animal",
            "O": entity.kind == "object", "K": entity.kind == "people", "D": entity.kind == "flock"}[kind]


class _Teller:
    """Tells one story sentence by sentence, keeping what a reader knows so every reference has one reading.

    A pronoun is written only when (1) the sentence so far mentions exactly one candidate of its gender and
    number, the subject of its own clause excluded for an object pronoun ("Sam fell and Tom helped him"); or
    (2) the sentence so far mentions none and the previous sentence mentions exactly that one, as its
    subject when another candidate exists; or (3) it is the only candidate met so far and was seen lately.
    Plain nouns of the text ("a bench", "the boats") count as candidates for "it" and "they". A description
    ("the girl", "the girls", "the others") is written only when the text has given it and nothing else fits.
    """

    def __init__(self, rng: np.random.Generator, cast: list[_Entity]):
        self.rng = rng
        self.cast = cast
        self.order = {e: i for i, e in enumerate(cast)}
        self.known: dict[_Entity, _Known] = {}
        self.introduced: list[_Entity] = []
        self.referenced: set[_Entity] = set()
        self.seen: dict[_Entity, int] = {}
        self.history: list[list[_Mention]] = []
        self.subjects: list[frozenset] = []
        self.setting: tuple[str, str, bool] | None = None
        self.friends: frozenset | None = None
        self.sentences: list[_Sentence] = []
        self.used: set[str] = set()
        self.group = next((e for e in cast if e.kind in ("people", "flock")), None)

    # who a reference can mean
    def _singular_ok(self, entity: _Entity, case: str, sent: _Sentence) -> bool:
        gender = entity.gender
        excluded = sent.clause if case == "o" else frozenset()
        earlier = [m for m in sent.mentions if m.counted]
        if gender == "n" and any(m.distractor == "n" for m in earlier):
            return False
        here = {x for m in earlier for x in m.entities if x.gender == gender} - excluded
        if here:
            return here == {entity}
        prev = self.history[-1] if self.history else []
        if gender == "n" and any(m.distractor == "n" for m in prev):
            return False
        if self.seen.get(entity, -9) < sent.index - 3:
            return False
        if {x for x in self.known if x.gender == gender} - excluded == {entity}:
            return True
        before = {x for m in prev for x in m.entities if x.gender == gender} - excluded
        return before == {entity} and self.subjects[-1] == frozenset({entity})

    def _plural_ok(self, target: frozenset, case: str, sent: _Sentence) -> bool:
        excluded = sent.clause if case == "o" else frozenset()
        earlier = [m for m in sent.mentions if m.counted]
        if any(m.distractor == "p" for m in earlier):
            return False
        if self.group is not None and self.group in target and sent.subject == target and case == "s":
            return True  # "The children ran to the teacher when they saw her"
        here = {x for m in earlier for x in m.entities if x.kind != "object"} - excluded
        if here:
            return here == target
        prev = self.history[-1] if self.history else []
        if any(m.distractor == "p" for m in prev):
            return False
        if {x for m in prev for x in m.entities if x.kind != "object"} - excluded == target:
            # the previous sentence's characters, when they are everyone, its subject or the one group
            everyone = {x for x in self.known if x.animate} - excluded
            return target == everyone or self.subjects[-1] == target or self.group in target
        if self.group is not None or any(self.seen.get(x, -9) < sent.index - 2 for x in target):
            return False
        return {x for x in self.known if x.animate} - excluded == target

    def _pronoun_ok(self, entity: _Entity, case: str, sent: _Sentence) -> bool:
        if entity.gender == "p":
            return self._plural_ok(frozenset({entity}), case, sent)
        return self._singular_ok(entity, case, sent)

    def _alone(self, members: Any) -> bool:
        """No one else of their gender: then "the girl" means her even if the text never said she is one."""
        genders = {e.gender for e in members}
        return all(e.kind == "person" and e.young for e in members) and not any(
            e.gender in genders and e not in members for e in self.cast)

    def _descriptions(self, entity: _Entity) -> list[str]:
        """ "the girl", "the fisherman": descriptions the text has given it that fit no other character."""
        nouns = set(self.known[entity].established) | ({entity.base} if self._alone({entity}) else set())
        return [f"the {noun}" for noun in sorted(nouns) if sum(noun in other.nouns for other in self.cast) == 1]

    def _set_descriptions(self, target: frozenset) -> list[str]:
        found = []
        if self.group is None:
            for noun, plural in (("girl", "girls"), ("boy", "boys")):
                members = frozenset(e for e in self.cast if noun in e.nouns)
                if members == target and len(members) >= 2 and all(e in self.known for e in members) and (
                    self._alone(members) or all(noun in self.known[e].established for e in members)
                ):
                    found.append(f"the {plural}")
            young = frozenset(e for e in self.cast if e.kind == "person" and e.young)
            adults = any(e.kind == "person" and not e.young for e in self.cast)
            if young == target and len(young) >= 2 and all(e in self.known for e in young) and (
                not adults or all(self.known[e].established & {"girl", "boy"} for e in young)
            ):
                found += ["the children", "the kids"]
        if self.friends == target:
            found.append("the two friends" if len(target) == 2 else "the friends")
        return found

    def _others_ok(self, target: frozenset, single: _Entity | None, sent: _Sentence) -> bool:
        """ "the others": everyone but ``single``, who this sentence has just named, all of them seen lately."""
        animate = frozenset(e for e in self.cast if e.animate)
        mentioned = {x for m in sent.mentions for x in m.entities}
        return (
            self.group is None and single in mentioned and len(target) >= 2 and target | {single} == animate
            and all(e in self.known and (e in mentioned or self.seen.get(e, -9) >= sent.index - 2) for e in animate)
        )  # fmt: skip

    def _names(self, targets: Any) -> tuple[_Entity, ...]:
        return tuple(sorted(targets, key=self.introduced.index))

    def _resolved(self, targets: Any, case: str) -> str:
        joined = join_names([e.registry for e in self._names(targets)])
        return possessive(joined) if case in ("p", "h") else joined

    # writing one slot
    def _introduce(self, entity: _Entity, sent: _Sentence, follow: str | None, listed: bool = False,
                   bare: bool = False) -> None:
        """The first mention of ``entity``: its name with what it is, or a description; "his dog Rex" when its
        owner was just mentioned and "his" would mean the owner."""
        rng = self.rng
        forms: list[tuple[float, _Intro]] = []
        apposition = not listed and follow is not None and (follow[:1] in (",", ".") or re.match(r" [a-z]", follow))
        comma = "," if follow is not None and re.match(r" [a-z]", follow) else ""
        if entity.kind == "person" and entity.name:
            described = f"{_article(entity.noun)} {entity.noun}"
            plain = f"{_article(entity.base)} {entity.base}"
            if entity.clear:
                forms.append((4.0 if listed else 2.0, _Intro(entity.name, plain)))
            verb = _pick(rng, ("named", "called"))
            if not bare:
                forms.append((1.5, _Intro(f"{described} {verb} {entity.name}", described, {entity.noun})))
            look, distractor, _ = entity.look
            if apposition and look:
                forms.append((2.0, _Intro(f"{entity.name}, {described} {look}{comma}", f"{described} {look}",
                                          {entity.noun}, distractor)))
        elif entity.kind in ("person", "people", "flock"):
            forms.append((1.0, _Intro(entity.phrase, entity.phrase, entity.nouns, entity.distractor)))
        else:
            looks = f"{entity.adjective} {entity.noun}".strip()
            described = f"{_article(looks)} {looks}"
            plain = f"{_article(entity.noun)} {entity.noun}"
            if entity.name:
                verb = _pick(rng, ("named", "called"))
                forms.append((2.0, _Intro(f"{plain} {verb} {entity.name}", plain, {entity.noun})))
                if apposition:
                    forms.append((1.0, _Intro(f"{entity.name}, {described}{comma}", described, {entity.noun})))
            else:
                forms.append((2.0, _Intro(described, described, {entity.noun})))
            owner = entity.owner
            mentioned = {x for m in sent.mentions if m.counted for x in m.entities}
            if owner in self.known and owner in mentioned and self._pronoun_ok(owner, "p", sent):
                owned = (_Intro(f"{entity.noun} {entity.name}", plain, {entity.noun}, owned=True) if entity.name
                         else _Intro(looks, described, {entity.noun}, owned=True))
                forms.append((4.0, owned))
        form = _weighted(rng, forms)
        if form.owned:
            sent.refer(SUBJECT_PRONOUNS[owner.gender]["p"], (owner,), possessive(owner.registry))
            sent.mention(frozenset({owner}), "p")
            sent.write(f" {form.text}")
        else:
            sent.write(_capitalise(form.text) if sent.at_start() else form.text)
        self.known[entity] = _Known(form.description, frozenset(form.established))
        self.introduced.append(entity)
        if form.distractor:
            sent.mentions.append(_Mention(distractor=form.distractor))

    def _listable(self, members: Any) -> bool:
        """Three or more in a list only by bare name: "Tom, a tall man and Mia" reads as if Tom were the tall man."""
        return len(members) < 3 or all(e.name and (e in self.known or (e.kind == "person" and e.clear))
                                       for e in members)

    def _introduce_set(self, target: frozenset, case: str, sent: _Sentence, follow: str | None) -> bool:
        members = sorted(target, key=self.order.__getitem__)
        if not self._listable(members):
            return False
        names = [e.name for e in members]
        options: list[tuple[float, str]] = [(2.0, "list")]
        together = all(e.kind == "person" and e.name and e not in self.known for e in members)
        if together and case == "s" and sent.at_start() and follow is not None and re.match(r" [a-z]", follow):
            bases = {e.base for e in members}
            if len(bases) == 1 and bases <= {"girl", "boy"}:
                options.append((2.0, "noun"))
            if all(e.clear for e in members):
                options.append((1.0, "friends"))
        choice = _weighted(self.rng, options)
        if choice != "list":
            plural = {"girl": "girls", "boy": "boys"}.get(members[0].base, "") if choice == "noun" else "friends"
            sent.write(f"{_capitalise(NUMBER_WORDS[len(members)])} {plural}, {join_names(names)},")
            for e in members:
                noun = frozenset({e.base}) if choice == "noun" else frozenset()
                self.known[e] = _Known(f"{_article(e.base)} {e.base}", noun)
                self.introduced.append(e)
            if choice == "friends":
                self.friends = target
            return True
        for i, e in enumerate(members):
            if i:
                sent.write(" and " if i == len(members) - 1 else ", ")
            if e in self.known:
                self._remention(e, "s", sent)
            else:
                self._introduce(e, sent, None, listed=True, bare=len(members) >= 3)
        return True

    def _remention(self, entity: _Entity, case: str, sent: _Sentence) -> None:
        """A character's name or, unnamed, its description, inside a list such as "Tom and the fisherman"."""
        if entity.name:
            sent.write(possessive(entity.name) if case in ("p", "h") else entity.name)
            return
        self._describe(entity, _pick(self.rng, self._descriptions(entity) or [entity.registry]), case, sent)

    def _describe(self, entity: Any, noun_phrase: str, case: str, sent: _Sentence) -> None:
        targets = self._names(entity if isinstance(entity, frozenset) else {entity})
        sent.refer(noun_phrase, targets, self._resolved(targets, case))
        if case in ("p", "h"):
            sent.write("'" if noun_phrase.endswith("s") else "'s", "")

    def _slot(self, role: str, case: str, star: bool, binding: dict[str, Any], sent: _Sentence,
              follow: str | None) -> bool:
        target = binding[role]
        group = target if isinstance(target, frozenset) else frozenset({target})
        start = len(sent.text)
        if case in ("I", "me", "you"):
            sent.refer(case, self._names(group), self._resolved(group, "s"))
            sent.mention(group, case, counted=False)
            return True
        if any(e not in self.known for e in group):
            if star or case not in ("s", "o"):
                return False
            if isinstance(target, frozenset):
                if not self._introduce_set(target, case, sent, follow):
                    return False
            else:
                self._introduce(target, sent, follow)
            sent.mention(group, case, start=start)
            return True
        options: list[tuple[float, tuple[str, str]]] = []
        # no pronoun before "who" or "which" ("He, who was hungry"); a character named again in the same sentence
        # reads naturally only where a pronoun would not do
        relative = follow is not None and follow.startswith((", who", ", which"))
        said = any(m.entities == group for m in sent.mentions)
        if isinstance(target, frozenset):
            pronoun_ok = not relative and self._plural_ok(target, case, sent)
            again = 0.15 if pronoun_ok and said else 1.0
            if pronoun_ok:
                options.append((5.0, ("pronoun", SUBJECT_PRONOUNS["p"][case])))
                if len(target) == 2 and case in ("s", "o"):
                    options.append((1.0 * again, ("describe", "the two of them")))
                if len(target) == 2 and case == "s" and sent.at_start():
                    options.append((1.0, ("describe", "both")))
            found = self._set_descriptions(target)
            options += [((2.5 if d in ("the girls", "the boys") else 1.0) * again, ("describe", d)) for d in found]
            if role == "r" and case in ("s", "o") and self._others_ok(target, binding.get("a"), sent):
                options.append((4.0, ("describe", "the others")))
            if not star and self._listable(target):
                options.append((2.0 * again, ("list", "")))
        else:
            pronoun = SUBJECT_PRONOUNS[target.gender].get(case)
            pronoun_ok = bool(pronoun) and not relative and self._pronoun_ok(target, case, sent)
            again = 0.15 if pronoun_ok and said else 1.0
            if pronoun_ok:
                options.append((6.0, ("pronoun", pronoun)))
            found = self._descriptions(target)
            options += [(1.2 * again / len(found), ("describe", d)) for d in found]
            if target.name and not star:
                options.append((2.0 * again, ("name", target.name)))
        if not options:
            return False
        if options[0][1][0] == "pronoun" and case in ("p", "h") and group == sent.clause:
            options = options[:1]  # "The fox swished its tail", never "The fox swished Pebble's tail"
        how, text = _weighted(self.rng, options)
        if how == "pronoun":
            sent.refer(text, self._names(group), self._resolved(group, case))
        elif how == "describe":
            self._describe(target, text, case, sent)
        elif how == "name":
            sent.write(possessive(text) if case in ("p", "h") else text)
        else:
            for i, e in enumerate(self._names(group)):
                if i:
                    sent.write(" and " if i == len(group) - 1 else ", ")
                self._remention(e, case if i == len(group) - 1 else "s", sent)
        sent.mention(group, case, start=start)
        return True

    # one sentence
    def _bind(self, template: _Template, must_introduce: bool, fixed: dict[str, _Entity]) -> dict[str, Any] | None:
        """Characters for the template's roles, preferring the ones just mentioned and the ones still to meet."""
        rng = self.rng
        binding: dict[str, Any] = dict(fixed)
        used: set[_Entity] = set(fixed.values())
        for role, entity in fixed.items():
            case, star = template.first[role]
            if entity not in self.known and (star or case not in ("s", "o")):
                return None
        prev = {x for m in (self.history[-1] if self.history else []) for x in m.entities}
        for role in template.roles:
            case, star = template.first[role]
            can_introduce = case in ("s", "o") and not star
            kind = ROLE_KINDS[role]
            if kind in ("S", "R") or role in binding:
                continue
            pool = [e for e in self.cast if _fits(e, kind) and e not in used and (e in self.known or can_introduce)]
            if not pool:
                return None
            weights = [(10.0 if must_introduce else 2.0) if e not in self.known and e.animate else
                        1.5 if e not in self.known else 4.0 if e in prev else 1.5 for e in pool]
            entity = _weighted(rng, list(zip(weights, pool, strict=True)))
            binding[role] = entity
            used.add(entity)
        animate = [e for e in self.cast if e.animate and e not in used]
        if "g" in template.first:
            case, star = template.first["g"]
            if self.group is not None:
                return None
            if not (case in ("s", "o") and not star):
                animate = [e for e in animate if e in self.known]
            if len(animate) < 2:
                return None
            options = [frozenset(animate)]
            recent = frozenset(e for e in animate if e in prev)
            if len(recent) >= 2:
                options += [recent, recent]
            if len(animate) >= 3:
                size = int(rng.integers(2, len(animate)))
                options.append(frozenset(animate[i] for i in rng.permutation(len(animate))[:size]))
            binding["g"] = _pick(rng, options)
            used |= binding["g"]
        if "r" in template.first:
            rest = frozenset(e for e in self.cast if e.animate) - {binding.get("a")}
            case, star = template.first["r"]
            if self.group is not None or len(rest) < 2 or rest & used:
                return None
            if any(e not in self.known for e in rest) and not (case in ("s", "o") and not star):
                return None
            binding["r"] = rest
        chosen = {x for v in binding.values() for x in (v if isinstance(v, frozenset) else {v})}
        if must_introduce and not any(e.animate and e not in self.known for e in chosen):
            return None
        return binding

    def _place(self, token: str, sent: _Sentence) -> str:
        """ "in the park" for {here}; {in_place} and {to_place} move the scene somewhere new."""
        current = sent.setting or self.setting
        if token == "here":
            return f"{current[1]} {current[0]}"
        outdoor = any(e.outdoor for e in self.cast)
        choices = [s for s in SETTINGS if s != current and not (outdoor and s[2])]
        sent.setting = _pick(self.rng, choices)
        return f"to {sent.setting[0]}" if token == "to_place" else f"{sent.setting[1]} {sent.setting[0]}"

    def _render(self, template: _Template, binding: dict[str, Any], index: int) -> _Sentence | None:
        def word(match: re.Match) -> str:
            return binding[match.group(1)].words[match.group(2)]

        parts = [p for p in TOKEN.split(WORD_SLOT.sub(word, template.text)) if p]
        sent = _Sentence(index)
        if index and template.text.startswith("{") and SLOT.match(template.text) and self.rng.random() < 0.2:
            sent.write(_pick(self.rng, SENTENCE_OPENERS))
        for i, part in enumerate(parts):
            nxt = parts[i + 1] if i + 1 < len(parts) else ""
            follow = None if nxt.startswith(("{", "[")) else nxt  # the words after a slot, when they are fixed
            if part.startswith("["):
                text, _, distractor = part[1:-1].partition("|")
                sent.write(text)
                sent.mentions.append(_Mention(distractor=distractor or "n"))
            elif part == "{It}":
                sent.expletives.append((len(sent.text), len(sent.text) + 2))
                sent.write("It")
            elif part in ("{in_place}", "{to_place}", "{here}"):
                sent.write(self._place(part[1:-1], sent))
            elif part.startswith("{"):
                match = SLOT.fullmatch(part)
                if not self._slot(match.group(1), match.group(3) or "s", bool(match.group(2)), binding, sent, follow):
                    return None
            else:
                sent.write(part)
        return sent if _sentence_ok(sent) else None

    def tell(self, length: int) -> None:
        templates = _templates()
        for index in range(length):
            pending = [e for e in self.cast if e.animate and e not in self.known]
            must = bool(pending) and (index == 0 or len(pending) >= length - index or self.rng.random() < 0.5)
            for _ in range(ATTEMPTS):
                template, fixed = self._choose(templates, index, length)
                if template.text in self.used:
                    continue
                binding = self._bind(template, must, fixed)
                if binding is None:
                    continue
                saved = (dict(self.known), list(self.introduced), self.friends)
                sent = self._render(template, binding, index)
                if sent is not None:
                    self._commit(sent)
                    self.used.add(template.text)
                    break
                self.known, self.introduced, self.friends = dict(saved[0]), list(saved[1]), saved[2]
            else:
                raise _UnfinishedError
        if any(e.animate and e not in self.known for e in self.cast):
            raise _UnfinishedError

    def _choose(self, templates: dict[str, tuple[_Template, ...]], index: int,
                length: int) -> tuple[_Template, dict[str, _Entity]]:
        """A template and the roles it fixes: a species' or an object's own lines are about that one."""
        if index == 0:
            return _pick(self.rng, templates["open"]), {}
        options: list[tuple[float, tuple[tuple[_Template, ...], dict[str, _Entity]]]] = []
        for name, (weight, _) in CATEGORIES.items():
            if name in ("people", "flock") and (self.group is None or self.group.kind != name):
                continue
            if name == "ending" and index < length - 2:
                continue
            options.append((weight, (templates[name], {})))
        for entity in self.cast:
            if entity.lines:
                role = "x" if entity.kind == "object" else "y"
                options.append((ENTITY_LINES, (_own_templates(entity.lines), {role: entity})))
        group, fixed = _weighted(self.rng, options)
        return _pick(self.rng, group), fixed

    def _commit(self, sent: _Sentence) -> None:
        for mention in sent.mentions:
            for e in mention.entities:
                self.seen[e] = sent.index
        for _, _, _, targets in sent.refs:
            self.referenced.update(targets)
        self.setting = sent.setting or self.setting
        sent.setting = self.setting
        self.history.append(sent.mentions)
        self.subjects.append(sent.subject or frozenset())
        self.sentences.append(sent)


def _sentence_ok(sent: _Sentence) -> bool:
    """Every listed mention is found, in order, where it was written; every word that stands for someone is
    listed; the sentence stays one sentence and fits the reply schema."""
    text = sent.text
    if split_sentences(text) != [text] or len(sent.refs) > 6 or any(len(m) > 30 for _, _, m, _ in sent.refs):
        return False
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for start, end, mention, _ in sent.refs:
        spans[mention.lower()].append((start, end))
    for mention, placed in spans.items():
        found, position = [], 0
        while (span := find_word(text, mention, position)) is not None:
            found.append(span)
            position = span[1]
        if found != placed:
            return False
    covered = [(s, e) for s, e, _, _ in sent.refs] + sent.expletives
    return all(
        any(s <= start and end <= e for s, e in covered) for word, start, end in words(text)
        if word.lower() in REFERENCE_WORDS
    )


def _story_gold(teller: _Teller) -> tuple[list[str], dict[str, Any], list[list[str]], list[str]]:
    registered = [e for e in teller.introduced if e.kind != "object" or e in teller.referenced]
    characters = [{"name": e.registry, "description": teller.known[e].description} for e in registered]
    frames, present = [], []
    for sent in teller.sentences:
        references = [{"mention": mention, "refers_to": [e.registry for e in targets]}
                      for _, _, mention, targets in sorted(sent.refs, key=lambda r: r[0])]
        frames.append({"setting": sent.setting[0] if sent.setting else "", "references": references})
        shown = dict.fromkeys(e for m in sent.mentions for e in teller._names(m.entities))
        present.append([e.registry for e in shown if e in registered])
    sentences = [s.text for s in teller.sentences]
    return sentences, {"characters": characters, "frames": frames}, present, [s.resolved for s in teller.sentences]


def _fits_schema(value: dict[str, Any], schema: dict[str, Any], what: str) -> None:
    problem = schema_problem(value, schema)
    if problem:
        raise ValueError(f"{what}: {problem}")


def check_story(sentences: list[str], gold: dict[str, Any]) -> None:
    """Raise ValueError unless the pack's own schema and normaliser take ``gold`` as it is."""
    _fits_schema(gold, story.story_schema(len(sentences)), "story reply")
    plan, notes = story.normalise_story(gold, sentences)
    if notes:
        raise ValueError(f"the story normaliser changed the gold reply: {notes}")
    for frame, entry in zip(plan.frames, gold["frames"], strict=True):
        parsed = [{"mention": r.mention, "refers_to": list(r.refers_to)} for r in frame.references]
        if parsed != entry["references"]:
            raise ValueError(f"references of {frame.sentence!r} read back as {parsed}")
    if split_sentences(" ".join(sentences)) != sentences:
        raise ValueError("the sentences do not split back into themselves")


def story_example(seed: int, index: int) -> dict[str, Any]:
    """A story of 3 to 10 sentences with 1 to 4 characters and its gold story reply."""
    for attempt in range(ATTEMPTS):
        rng = _rng(seed, index, STORY_KEY, attempt)
        cast = _sample_cast(rng)
        teller = _Teller(rng, cast)
        try:
            teller.tell(int(rng.integers(3, 11)))
        except _UnfinishedError:
            continue
        sentences, gold, present, resolved = _story_gold(teller)
        if len(gold["characters"]) > 8:
            continue
        check_story(sentences, gold)
        return {"id": f"story-{seed}-{index}", "sentences": sentences, "gold": gold, "present": present,
                "resolved": resolved}
    raise RuntimeError(f"no story for seed {seed}, index {index} after {ATTEMPTS} attempts")


def labelled_story(example: dict[str, Any]) -> dict[str, Any]:
    """A generated story in the labelled-story format ``llm.evaluation`` scores (``tests/data/heldout``), so a
    planner can be measured on fresh stories of the generator it was trained on, beside the held ones."""
    frames = example["gold"]["frames"]
    return {"id": example["id"], "split": "generated",
            "sentences": [{"text": text, "references": frame["references"], "present": present}
                          for text, frame, present in zip(example["sentences"], frames, example["present"], strict=True)]}  # fmt: skip


# --- morph ------------------------------------------------------------------------------------------
# A subject family: (pronoun, starting looks as (look, noun), starting poses, changes); a change is
# (kind, what the description says, new look or "" to keep it, new noun, new pose or None to keep it).
# "look" changes appearance, texture or colour and keeps shape and pose (code 0), "pose" changes pose, action,
# shape, position or size (code 1), "both" does both at once (code 2).
LOOK, POSE, BOTH = "look", "pose", "both"
CODE_OF = {LOOK: "0", POSE: "1", BOTH: "2"}
MORPH_SUBJECTS: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...], tuple[tuple, ...]], ...] = (
    ("it", (("a cat", "cat"), ("a ginger cat", "cat"), ("a black cat", "cat")),
     ("sleeping on a rug", "sitting on a windowsill", ""),
     ((POSE, "wakes up", "", "", "awake and sitting up"), (POSE, "stretches", "", "", "stretching"),
      (POSE, "yawns", "", "", "yawning widely"), (POSE, "jumps onto a table", "", "", "jumping onto a table"),
      (POSE, "curls up", "", "", "curled up in a ball"), (LOOK, "turns into a tiger", "a tiger", "tiger", None),
      (LOOK, "becomes a stone statue", "a stone statue of a cat", "statue", None),
      (LOOK, "turns golden", "a golden cat", "cat", None),
      (BOTH, "shrinks into a tiny kitten", "a tiny kitten", "kitten", "")),),
    ("it", (("a small brown dog", "dog"), ("a golden retriever", "dog"), ("a white poodle", "dog")),
     ("sitting on the grass", "lying by a door", ""),
     ((POSE, "stands up", "", "", "standing"), (POSE, "wags its tail", "", "", "wagging its tail"),
      (POSE, "jumps to catch a ball", "", "", "jumping to catch a ball"),
      (POSE, "rolls over", "", "", "rolling over on its back"), (POSE, "runs across the yard", "", "", "running"),
      (LOOK, "turns into a wolf", "a grey wolf", "wolf", None),
      (LOOK, "becomes a robot dog", "a metal robot dog", "dog", None),
      (BOTH, "grows into a huge old dog", "a huge old dog", "dog", "")),),
    ("she", (("a young woman", "woman"), ("a woman in a red dress", "woman"), ("a woman with long hair", "woman")),
     ("standing in a field", "sitting on a bench", ""),
     ((POSE, "raises her hand", "", "", "raising her hand"), (POSE, "starts to dance", "", "", "dancing"),
      (POSE, "waves", "", "", "waving"), (POSE, "turns her head", "", "", "turning her head to the side"),
      (POSE, "smiles", "", "", "smiling"), (LOOK, "ages into an old woman", "an old woman", "woman", None),
      (LOOK, "turns into a marble statue", "a marble statue of a woman", "statue", None),
      (LOOK, "changes into a blue dress", "a woman in a blue dress", "woman", None),
      (BOTH, "turns into a tree with raised branches", "a tree with branches raised like arms", "tree", "")),),
    ("he", (("a man in a suit", "man"), ("an old man with a beard", "man"), ("a young man", "man")),
     ("standing on a street", "sitting at a desk", ""),
     ((POSE, "lifts his hat", "", "", "lifting his hat"), (POSE, "starts running", "", "", "running"),
      (POSE, "jumps", "", "", "jumping in the air"), (POSE, "kneels", "", "", "kneeling"),
      (POSE, "crosses his arms", "", "", "with his arms crossed"), (POSE, "laughs", "", "", "laughing"),
      (LOOK, "grows a long white beard", "a man with a long white beard", "man", None),
      (LOOK, "turns into a bronze statue", "a bronze statue of a man", "statue", None),
      (LOOK, "becomes a knight in armour", "a knight in shining armour", "knight", None),
      (BOTH, "turns into a bear standing on its hind legs", "a brown bear", "bear", "standing on its hind legs")),),
    ("she", (("a little girl", "girl"), ("a girl in a yellow raincoat", "girl")), ("standing in the rain", ""),
     ((POSE, "jumps into a puddle", "", "", "jumping into a puddle"), (POSE, "spins around", "", "", "spinning"),
      (POSE, "opens an umbrella", "", "", "holding an open umbrella"), (POSE, "sits down", "", "", "sitting down"),
      (LOOK, "turns into a cartoon character", "a cartoon girl", "girl", None),
      (BOTH, "grows up into a tall woman", "a tall woman", "woman", "standing")),),
    ("it", (("a red apple", "apple"), ("a green apple", "apple")), ("on a wooden table", ""),
     ((LOOK, "turns green", "a green apple", "apple", None), (LOOK, "turns golden", "a golden apple", "apple", None),
      (LOOK, "rots", "a rotten brown apple", "apple", None), (LOOK, "turns into a pear", "a pear", "pear", None),
      (POSE, "rolls to the edge of the table", "", "", "at the edge of a table"),
      (POSE, "falls off the table", "", "", "falling off a table"),
      (POSE, "swells to twice its size", "", "", "swollen to twice its size"),
      (BOTH, "is sliced in half", "an apple sliced in half", "apple", "")),),
    ("it", (("a red tulip", "tulip"),), ("closed as a bud", "in a glass vase", ""),
     ((POSE, "opens its petals", "", "", "with its petals wide open"),
      (POSE, "bends toward the sun", "", "", "bending toward the sun"), (POSE, "droops", "", "", "drooping"),
      (POSE, "sways in the wind", "", "", "swaying in the wind"),
      (LOOK, "turns blue", "a blue tulip", "tulip", None), (LOOK, "turns to glass", "a glass tulip", "tulip", None),
      (LOOK, "withers and turns brown", "a withered brown tulip", "tulip", None)),),
    ("it", (("a green oak tree", "tree"),), ("in a meadow", "on a hill", ""),
     ((LOOK, "turns autumn orange", "an oak tree with orange autumn leaves", "tree", None),
      (LOOK, "loses its leaves", "a bare oak tree", "tree", None),
      (LOOK, "is covered in snow", "a snow-covered oak tree", "tree", None),
      (LOOK, "blossoms with pink flowers", "an oak tree covered in pink blossom", "tree", None),
      (POSE, "bends in the wind", "", "", "bending in a strong wind"), (POSE, "grows much taller", "", "", "grown very tall"),
      (BOTH, "shrinks back into a sapling", "a small oak sapling", "sapling", "")),),
    ("it", (("a small wooden house", "house"),), ("on a hill", "by a lake", ""),
     ((LOOK, "is covered in snow", "a snow-covered wooden house", "house", None),
      (LOOK, "is painted red", "a small red wooden house", "house", None),
      (LOOK, "turns into a gingerbread house", "a gingerbread house", "house", None),
      (LOOK, "gets overgrown with ivy", "an old wooden house overgrown with ivy", "house", None),
      (POSE, "grows an extra floor", "", "", "with an extra floor on top"),
      (POSE, "lifts off the ground", "", "", "floating above the ground"),
      (BOTH, "crumbles into ruins", "the stone ruins of a house", "ruins", "")),),
    ("it", (("a red sports car", "car"),), ("parked on a street", "in a garage", ""),
     ((LOOK, "turns yellow", "a yellow sports car", "car", None), (LOOK, "rusts", "a rusty old sports car", "car", None),
      (LOOK, "becomes a police car", "a police car", "car", None),
      (POSE, "drives away", "", "", "driving down a road"), (POSE, "turns the corner", "", "", "turning a corner"),
      (POSE, "jumps over a ramp", "", "", "in the air above a ramp"),
      (BOTH, "transforms into a giant robot", "a giant robot", "robot", "standing tall")),),
    ("it", (("a tall white candle", "candle"), ("a red candle", "candle")), ("on a table", ""),
     ((LOOK, "lights up", "a burning candle with a bright flame", "candle", None),
      (LOOK, "turns blue", "a blue candle", "candle", None), (POSE, "tips over", "", "", "tipped over on its side"),
      (BOTH, "burns down to a stub", "a short melted candle stub", "stub", "")),),
    ("it", (("a snowman with a carrot nose", "snowman"),), ("in a garden", ""),
     ((POSE, "waves its stick arm", "", "", "waving a stick arm"), (POSE, "tilts its head", "", "", "with its head tilted"),
      (LOOK, "is covered in glitter", "a glittering snowman", "snowman", None),
      (BOTH, "melts into a puddle", "a puddle of water with a carrot in it", "puddle", "")),),
    ("it", (("a green caterpillar", "caterpillar"),), ("on a leaf", ""),
     ((POSE, "crawls along the branch", "", "", "crawling along a branch"), (POSE, "curls up", "", "", "curled up"),
      (LOOK, "turns orange", "an orange caterpillar", "caterpillar", None),
      (BOTH, "turns into a butterfly", "a blue butterfly", "butterfly", "with its wings open")),),
    ("it", (("a speckled egg", "egg"),), ("in a nest", ""),
     ((POSE, "wobbles", "", "", "wobbling"), (LOOK, "turns golden", "a golden egg", "egg", None),
      (BOTH, "hatches into a baby dragon", "a baby dragon", "dragon", "stretching its wings")),),
    ("it", (("a green summer forest", "forest"),), ("", "beside a river"),
     ((LOOK, "turns to autumn", "an autumn forest with orange leaves", "forest", None),
      (LOOK, "is covered in snow", "a snowy winter forest", "forest", None),
      (LOOK, "fills with fog", "a foggy forest", "forest", None),
      (LOOK, "turns dark at night", "a forest at night under the moon", "forest", None),
      (POSE, "sways in a storm", "", "", "with trees bending in a storm")),),
    ("it", (("a busy city street", "street"),), ("",),
     ((LOOK, "turns to night", "a city street at night with glowing lights", "street", None),
      (LOOK, "is flooded with rain", "a rainy city street with puddles", "street", None),
      (LOOK, "is covered in snow", "a snowy city street", "street", None)),),
    ("it", (("a brown horse", "horse"), ("a white horse", "horse")), ("standing in a field", "grazing", ""),
     ((POSE, "rears up", "", "", "rearing up"), (POSE, "gallops", "", "", "galloping"),
      (POSE, "lies down", "", "", "lying in the grass"), (LOOK, "turns into a zebra", "a zebra", "zebra", None),
      (LOOK, "becomes a unicorn", "a white unicorn", "unicorn", None),
      (BOTH, "turns into a winged horse taking off", "a winged horse", "horse", "taking off into the sky")),),
    ("it", (("a red balloon", "balloon"), ("a yellow balloon", "balloon")), ("tied to a fence", "floating", ""),
     ((POSE, "inflates to twice its size", "", "", "inflated to twice its size"),
      (POSE, "floats up into the sky", "", "", "high in the sky"), (LOOK, "turns silver", "a silver balloon", "balloon", None),
      (LOOK, "turns into a hot air balloon", "a hot air balloon", "balloon", None)),),
)  # fmt: skip
STYLES = (("watercolor", "a watercolor painting of"), ("3d render", "a 3d render of"), ("pencil sketch",
          "a pencil sketch of"), ("oil painting", "an oil painting of"), ("cartoon", "a cartoon of"))
CONNECTORS = (", then ", " and then ", ", and then ", ", after that ", " and ")
FRAME_COUNTS = (4, 6, 10, 12, 16, 24)


def control_codes(kinds: list[str]) -> list[str]:
    """One code per segment: the code of its kind of change, or "3" (keep) when it is the previous segment's kind."""
    return [CODE_OF[k] if i == 0 or kinds[i - 1] != k else "3" for i, k in enumerate(kinds)]


def check_morph(gold: dict[str, Any]) -> None:
    """Raise ValueError unless the morph task's schema, normaliser and parser take ``gold`` as it is."""
    _fits_schema(gold, morph.REPLY_SCHEMA, "morph reply")
    plan, notes = morph.normalise_reply(gold)
    if notes or list(plan.prompts) != gold["prompts"] or list(plan.controls) != gold["controls"]:
        raise ValueError(f"the morph normaliser changed the gold reply: {notes}")
    morph.parse_morph_plan({"task": "morph", **gold})


def morph_example(seed: int, index: int) -> dict[str, Any]:
    """A coarse animation description and its gold morph reply: 2 to 4 keyframe prompts and a code per segment."""
    for attempt in range(ATTEMPTS):
        rng = _rng(seed, index, MORPH_KEY, attempt)
        pronoun, looks, poses, changes = _pick(rng, MORPH_SUBJECTS)
        look, noun = _pick(rng, looks)
        pose = _pick(rng, poses)
        style, prefix = ("", "a photo of") if rng.random() < 0.7 else _pick(rng, STYLES)
        steps = [changes[i] for i in rng.permutation(len(changes))[: int(rng.integers(1, 4))]]
        prompts = [f"{prefix} {look} {pose}".strip()]
        text = f"{look} {pose}".strip()
        for i, (_, says, new_look, new_noun, new_pose) in enumerate(steps):
            if i:
                subject = _pick(rng, ("", f"{pronoun} ", f"the {noun} "))
                text += _pick(rng, CONNECTORS) + subject
            else:
                text += " "
            text += says
            look, noun = (new_look, new_noun) if new_look else (look, noun)
            pose = pose if new_pose is None else new_pose
            prompts.append(f"{prefix} {look} {pose}".strip())
        frames = morph.DEFAULT_FRAMES
        if rng.random() < 0.25:
            frames = int(_pick(rng, FRAME_COUNTS))
            text += _pick(rng, (f", {frames} frames per segment", f" with {frames} frames per step"))
        if style:
            text += _pick(rng, (f", {style} style", f", as {_article(style)} {style}"))
        if len(set(prompts)) != len(prompts) or any(len(p) > 100 for p in prompts):
            continue
        gold = {"prompts": prompts, "controls": control_codes([k for k, *_ in steps]),
                "negative": morph.DEFAULT_NEGATIVE, "frames_per_segment": frames}
        check_morph(gold)
        return {"id": f"morph-{seed}-{index}", "description": text, "gold": gold}
    raise RuntimeError(f"no morph description for seed {seed}, index {index}")


# --- expand -----------------------------------------------------------------------------------------
# A scene: (what the description calls it, how the global caption opens, starting images as (short, caption),
# side elements as (short, caption), sky, more sky, ground, more ground, more of the sides). The global
# caption lists the starting image and the side elements in order under the sky; a step to the left or right
# shows the next side element not yet shown, up the sky and down the ground, then more of the same.
SCENES: tuple[tuple, ...] = (
    ("a beach", "a sunny beach",
     (("kids building a sandcastle", "two kids building a sandcastle"), ("an umbrella", "a striped beach umbrella")),
     (("a lighthouse", "a red lighthouse on the rocks"), ("a dog", "a brown dog running by the waves"),
      ("a pier", "a wooden pier over the water"), ("sailboats", "white sailboats on the sea")),
     "a clear blue sky with seagulls", ("thin white clouds high above", "the bright midday sun"),
     "wet sand with shells and footprints", ("pebbles and seaweed at the waterline",),
     ("more golden sand and gentle waves", "dunes with tall grass")),
    ("a city street", "a busy city street",
     (("a cafe", "a small cafe with tables outside"), ("a bus stop", "people waiting at a bus stop")),
     (("a red tram", "a red tram passing by"), ("a flower stall", "a flower stall with buckets of roses"),
      ("a cyclist", "a cyclist in a yellow jacket"), ("tall buildings", "tall brick buildings with balconies")),
     "a grey sky over the rooftops", ("pigeons flying over the chimneys",),
     "a cobbled pavement with puddles", ("a drain cover and fallen leaves",),
     ("more shop fronts with bright signs", "a row of parked bicycles")),
    ("a forest", "a quiet green forest",
     (("a deer", "a deer drinking from a stream"), ("a wooden cabin", "a small wooden cabin")),
     (("tall pine trees", "tall pine trees"), ("a fox", "a red fox watching from the ferns"),
      ("a waterfall", "a small waterfall over mossy rocks"), ("a hiker", "a hiker with a green backpack")),
     "sunlight through the leafy treetops", ("a patch of blue sky between branches",),
     "a mossy forest floor with mushrooms", ("roots and fallen pine needles",),
     ("more trees and ferns", "a narrow path winding between the trees")),
    ("a mountain lake", "a calm mountain lake",
     (("a rowing boat", "a red rowing boat on the water"), ("a cabin", "a log cabin on the shore")),
     (("snowy peaks", "snowy mountain peaks"), ("a jetty", "a wooden jetty"), ("pine trees", "dark pine trees"),
      ("a fisherman", "a fisherman casting a line")),
     "a bright sky with a few clouds", ("an eagle circling high above",),
     "clear water over round stones", ("reeds at the edge of the water",),
     ("more of the still lake reflecting the hills", "a grassy shore with wildflowers")),
    ("a farm", "a sunny farm",
     (("a red barn", "a big red barn"), ("a tractor", "a green tractor in a field")),
     (("cows", "brown cows grazing behind a fence"), ("a windmill", "an old windmill"),
      ("a farmhouse", "a white farmhouse with a porch"), ("sheep", "white sheep on a hill")),
     "a wide blue summer sky", ("swallows swooping over the fields",),
     "a dirt track with tyre marks", ("grass and scattered straw",),
     ("more golden wheat fields", "a row of hay bales")),
    ("a market", "a lively open-air market",
     (("a fruit stall", "a stall piled with oranges and apples"), ("a baker", "a baker selling fresh bread")),
     (("a cheese stall", "a cheese stall under a striped awning"), ("shoppers", "shoppers carrying baskets"),
      ("a musician", "a street musician playing an accordion"), ("a fountain", "a stone fountain")),
     "strings of bunting under a blue sky", ("white clouds over the rooftops",),
     "a cobbled square with crates", ("dropped leaves of lettuce on the cobbles",),
     ("more stalls with colourful awnings", "a row of old shops")),
    ("a harbour", "a busy harbour",
     (("fishing boats", "fishing boats tied to the quay"), ("a crane", "a tall crane loading crates")),
     (("a lighthouse", "a white lighthouse at the end of the pier"), ("nets", "fishing nets drying on a wall"),
      ("a ferry", "a large ferry leaving port"), ("houses", "colourful houses along the waterfront")),
     "a windy sky with gulls", ("dark rain clouds in the distance",),
     "a stone quay with ropes and bollards", ("dark green water lapping at the stones",),
     ("more boats bobbing on the water", "stacks of lobster pots")),
    ("a desert", "a hot desert",
     (("a camel", "a camel resting in the sand"), ("an oasis", "a small oasis with palm trees")),
     (("dunes", "tall orange sand dunes"), ("a caravan", "a caravan of camels in the distance"),
      ("a cactus", "a tall green cactus"), ("ruins", "the ruins of an old stone fort")),
     "a cloudless pale blue sky", ("the blazing sun",),
     "rippled sand with animal tracks", ("dry cracked earth and small stones",),
     ("more rolling dunes", "a rocky plateau")),
    ("a snowy village", "a snowy mountain village",
     (("a church", "a small church with a bell tower"), ("a snowman", "children building a snowman")),
     (("chalets", "wooden chalets with snowy roofs"), ("a sleigh", "a horse pulling a sleigh"),
      ("skiers", "skiers on a white slope"), ("fir trees", "fir trees heavy with snow")),
     "a grey winter sky with falling snow", ("snowflakes drifting down",),
     "a snowy lane with footprints", ("packed snow and sledge tracks",),
     ("more snow-covered roofs", "a frozen pond")),
    ("a park", "a green city park",
     (("a pond with ducks", "ducks swimming on a pond"), ("a bench", "an old couple on a bench")),
     (("a playground", "a playground with a slide"), ("joggers", "joggers on a gravel path"),
      ("an oak tree", "a huge oak tree"), ("an ice cream van", "an ice cream van")),
     "a blue sky with white clouds", ("a kite high above the trees",),
     "green grass with daisies", ("a gravel path and fallen leaves",),
     ("more lawns and flower beds", "a row of tall trees")),
    ("a castle", "an old stone castle on a hill",
     (("a drawbridge", "a wooden drawbridge over a moat"), ("a tower", "a tall round tower")),
     (("knights", "knights on horseback"), ("a village", "a small village below the walls"),
      ("a forest", "a dark forest"), ("a river", "a winding river")),
     "a dramatic sky with a flag flying", ("crows circling the battlements",),
     "a rocky hillside with grass", ("stone steps leading down the hill",),
     ("more of the high castle walls", "rolling green hills")),
    ("an underwater reef", "a colourful coral reef",
     (("a turtle", "a sea turtle swimming"), ("a clownfish", "clownfish in an anemone")),
     (("coral", "branching pink coral"), ("a shipwreck", "an old shipwreck"), ("a diver", "a diver with a torch"),
      ("fish", "a school of silver fish")),
     "the bright rippling surface above", ("sunbeams shining down through the water",),
     "white sand with starfish", ("shells and sea grass on the sand",),
     ("more coral and swaying seaweed", "a dark drop into deep water")),
    ("a garden", "a cottage garden in bloom",
     (("a gardener", "a gardener watering roses"), ("a wheelbarrow", "a wheelbarrow full of soil")),
     (("a greenhouse", "a glass greenhouse"), ("a cat", "a cat sleeping on a wall"),
      ("beehives", "two white beehives"), ("a pond", "a small pond with lilies")),
     "a warm sky with butterflies", ("a few fluffy clouds",),
     "a brick path between flower beds", ("soil and scattered petals",),
     ("more flower beds full of tulips", "a wooden fence covered in ivy")),
)  # fmt: skip
GLOBAL_FORMS = ("{scene} with {items} under {sky}", "{scene} with {items}, under {sky}")


def check_expand(example: dict[str, Any]) -> None:
    """Raise ValueError unless the expand task's schemas, normaliser and parser take the captions as they are."""
    replies = [(expand.GLOBAL_SCHEMA, "global_caption", example["global_caption"])]
    replies += [(expand.LOCAL_SCHEMA, "caption", caption) for caption in example["local_captions"]]
    for schema, key, caption in replies:
        _fits_schema({key: caption}, schema, "expand reply")
        if expand.normalise_caption(key)({key: caption}) != (caption, []):
            raise ValueError(f"the expand normaliser changed the caption {caption!r}")
    steps = [{"direction": d, "caption": c}
             for d, c in zip(example["directions"], example["local_captions"], strict=True)]
    expand.parse_expand_plan({"task": "expand", "global_caption": example["global_caption"],
                              "initial_caption": example["image_caption"], "steps": steps})


def expand_example(seed: int, index: int) -> dict[str, Any]:
    """A scene, the caption of a starting image and 1 to 4 directions, with the global and local gold captions."""
    for attempt in range(ATTEMPTS):
        rng = _rng(seed, index, EXPAND_KEY, attempt)
        scene, opening, starts, sides, sky, more_sky, ground, more_ground, more_sides = _pick(rng, SCENES)
        start_short, caption = _pick(rng, starts)
        chosen = [sides[i] for i in sorted(rng.permutation(len(sides))[: int(rng.integers(2, 4))])]
        items = join_names([caption, *(detail for _, detail in chosen)])
        global_caption = _pick(rng, GLOBAL_FORMS).format(scene=opening, items=items, sky=sky)
        description = _pick(rng, ("{scene} with {items}", "{scene}, with {items}", "{scene}: {items}")).format(
            scene=scene, items=join_names([start_short, *(short for short, _ in chosen)]))
        directions = [str(_pick(rng, expand.DIRECTIONS)) for _ in range(int(rng.integers(1, 5)))]
        queues = {"side": [d for _, d in chosen] + list(more_sides), "up": [sky, *more_sky],
                  "down": [ground, *more_ground]}
        local = []
        for direction in directions:
            queue = queues["side" if direction in ("left", "right") else direction]
            if not queue:
                break
            local.append(queue.pop(0))
        if len(local) != len(directions) or len(global_caption) > 200:
            continue
        example = {"id": f"expand-{seed}-{index}", "description": description, "image_caption": caption,
                   "directions": directions, "global_caption": global_caption, "local_captions": local}
        check_expand(example)
        return example
    raise RuntimeError(f"no expansion scene for seed {seed}, index {index}")


# --- chat examples ----------------------------------------------------------------------------------
def _chat(kind: str, task_input: str, reply: dict[str, Any]) -> dict[str, Any]:
    """One call as the tuned model sees it: the short instruction and the input, then the gold reply. No system
    turn: Gemma's chat format has none, and the pack sends none."""
    user = tuned_messages(TUNED_INSTRUCTIONS[kind], [{"role": "user", "content": task_input}])
    return {"task": kind, "messages": [*user, {"role": "assistant", "content": json.dumps(reply, separators=(",", ":"))}]}


def chat_examples(n_story: int, n_morph: int, n_expand: int, seed: int) -> list[dict[str, Any]]:
    """Chat-format examples of every LLM call the planner makes, shuffled by ``seed``; the user turn is the
    input as the pack's prompt builders write it, without their few-shot example."""
    examples = []
    for i in range(n_story):
        ex = story_example(seed, i)
        examples.append(_chat("story", story.numbered(ex["sentences"]), ex["gold"]))
    for i in range(n_morph):
        ex = morph_example(seed, i)
        examples.append(_chat("morph", morph.messages(ex["description"])[-1]["content"], ex["gold"]))
    for i in range(n_expand):
        ex = expand_example(seed, i)
        user = expand.global_messages(ex["description"], ex["image_caption"])[-1]["content"]
        examples.append(_chat("expand_global", user, {"global_caption": ex["global_caption"]}))
        so_far = [ex["image_caption"]]
        for direction, caption in zip(ex["directions"], ex["local_captions"], strict=True):
            user = expand.local_messages(ex["global_caption"], direction, so_far)[-1]["content"]
            examples.append(_chat("expand_local", user, {"caption": caption}))
            so_far.append(caption)
    order = np.random.default_rng([seed, SHUFFLE_KEY]).permutation(len(examples))
    return [examples[i] for i in order]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m laser_story.training.planner_data",
                                     description="Write the planner's chat training examples as JSON lines.")
    parser.add_argument("--seed", type=int, default=0, help="non-negative seed; the same seed writes the same file")
    parser.add_argument("--stories", type=int, default=1500)
    parser.add_argument("--morph", type=int, default=300)
    parser.add_argument("--expand", type=int, default=300, help="expansion scenes (one example per LLM call)")
    parser.add_argument("--out", default=".cache/planner-data/train.jsonl")
    args = parser.parse_args(argv)
    examples = chat_examples(args.stories, args.morph, args.expand, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example) + "\n")
    counts = Counter(example["task"] for example in examples)
    print(f"wrote {len(examples)} chat examples to {out}: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
