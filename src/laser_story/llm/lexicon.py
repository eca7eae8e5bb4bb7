"""Word lists for the rule-based planner: who can be a character, their gender, where a scene takes place.

Small on purpose: they cover the words stories for picture generation use most, and a missing word only
makes the planner fall back to "unknown gender" or "no setting", never fail.
"""

from __future__ import annotations

MALE_NAMES = frozenset(
    """adam alex alan albert ali amir andrew arthur ben benjamin bob carl carlos charlie dan chris daniel david diego
    eddie edward eli elias ethan felix finn frank fred george greg hans harry henry hugh hugo ian isaac jack jacob
    jake james jamal jim jimmy joe john jonas jose josh juan kai ken kenji leo liam louis luca lucas marco mark
    martin matt max michael mike milo nathan nick noah oliver omar oscar owen paul pedro pete peter rafael raj
    ravi rob robert roland ryan sam samuel sebastian simon stefan steve theo thomas tim timmy tom tommy victor walter
    will william yusuf zack""".split()
)
FEMALE_NAMES = frozenset(
    """abby ada alice amelia amy ana anna aria ava bella beth chloe clara daisy ella ellie elena emily
    emma eva fatima freya grace hana hannah ivy jane jenny jess julia june kate katie laura layla leah lena lily
    lisa lucy luna maria maya meg mia mila molly nadia nina nora olivia paula priya rosa rose ruby sara sarah
    sofia sophie stella sue susan tara tina yuki zara zoe""".split()
)
TITLES = {
    "mr": "m", "mister": "m", "sir": "m", "king": "m", "prince": "m", "uncle": "m", "grandpa": "m", "lord": "m",
    "mrs": "f", "ms": "f", "miss": "f", "madam": "f", "lady": "f", "queen": "f", "princess": "f", "aunt": "f",
    "grandma": "f", "dr": "u", "doctor": "u", "professor": "u", "captain": "u", "officer": "u", "chef": "u",
    "detective": "u", "granny": "f",
}  # fmt: skip
# What a title says about its bearer: "Sir Alan" is "the knight", "Princess Ella" is "the princess".
TITLE_NOUNS = {
    "sir": "knight", "king": "king", "queen": "queen", "prince": "prince", "princess": "princess",
    "captain": "captain", "dr": "doctor", "doctor": "doctor", "professor": "professor", "detective": "detective",
    "grandma": "grandmother", "granny": "grandmother", "grandpa": "grandfather", "uncle": "uncle", "aunt": "aunt",
    "officer": "officer", "chef": "chef", "lady": "lady", "lord": "lord",
}  # fmt: skip

# head noun -> gender: m, f, u (a person of unknown gender) or n (an animal or thing, "it")
CHARACTER_NOUNS = {
    **dict.fromkeys(
        "boy man king prince father dad grandfather grandpa brother son uncle husband gentleman lord monk "
        "fisherman policeman fireman wizard knight butler waiter hero".split(),
        "m",
    ),
    **dict.fromkeys(
        "girl woman queen princess mother mom mum grandmother grandma sister daughter aunt wife lady nun witch "
        "fisherwoman actress waitress mermaid maid heroine".split(),
        "f",
    ),
    **dict.fromkeys(
        "child kid baby teacher doctor farmer pilot sailor soldier baker student chef painter musician scientist "
        "detective stranger traveler traveller hunter merchant guard explorer astronaut pirate captain friend "
        "neighbor neighbour shopkeeper driver nurse artist dancer singer clown giant elf dwarf troll fairy ghost "
        "villager gardener librarian inventor climber runner swimmer skater archer ranger healer servant worker "
        "cook mayor priest thief monster alien officer professor".split(),
        "u",
    ),
    **dict.fromkeys(
        "dog puppy cat kitten bird owl fox rabbit bunny bear wolf horse pony mouse dragon robot frog turtle lion "
        "tiger elephant monkey squirrel duck cow pig sheep goat fish whale dolphin parrot crow snake deer unicorn "
        "hedgehog penguin butterfly bee spider dinosaur chicken hen rooster goose cub snowman scarecrow doll "
        "puppet teddy hamster guinea lamb donkey camel zebra giraffe kangaroo koala panda raccoon otter beaver "
        "badger seal crab octopus shark eagle hawk pigeon sparrow swan peacock ostrich lizard tortoise snail ant "
        "ladybird ladybug goldfish calf foal piglet duckling chick bat moose leopard cheetah hippo gorilla "
        "gecko ferret mole bull ox stallion mare".split(),
        "n",
    ),
    **dict.fromkeys("postman mailman milkman nephew grandson cowboy".split(), "m"),
    **dict.fromkeys("niece granddaughter cowgirl ballerina".split(), "f"),
    **dict.fromkeys(
        "cousin twin partner classmate sibling vet dentist writer poet magician juggler shepherd miner carpenter tailor blacksmith hairdresser "
        "photographer lawyer judge coach referee zookeeper cashier porter janitor lifeguard mechanic".split(),
        "u",
    ),
}
# Things a story's "it" can mean: a character of the plan only when something refers back to it.
THING_NOUNS = frozenset(
    "kite balloon boat car ball toy hat cap umbrella key book cake pie guitar violin drum flute piano bicycle bike "
    "letter box bag basket ring necklace lamp lantern candle map coin apple cup mug bottle rope sword shield crown "
    "wand phone camera clock watch ticket picture painting photo flower shell stone rock stick sandwich cookie "
    "present gift parcel package mirror blanket pillow scarf kettle bucket shovel ladder wagon sled sledge train "
    "truck bus plane rocket robe cloak jar bowl plate spoon egg pumpkin carrot shoe boot glove sock drawing note "
    "card loaf rod net bell rose tulip daisy skeleton statue feather".split()
)
CHARACTER_NOUNS.update(dict.fromkeys(THING_NOUNS, "n"))


def plural_of(noun: str) -> str:
    """The regular English plural: "kite" -> "kites", "fox" -> "foxes", "daisy" -> "daisies", "leaf" -> "leaves"."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith("f"):
        return noun[:-1] + "ves"
    return noun + "s"


# "the kites", "planted roses", "three pigs": groups of things and animals that "them" can mean
PLURAL_THINGS = frozenset(plural_of(n) for n in THING_NOUNS)
PLURAL_NOUNS = {
    "boys": "m", "men": "m", "brothers": "m", "kings": "m", "princes": "m",
    "girls": "f", "women": "f", "sisters": "f", "queens": "f", "princesses": "f",
    "children": "u", "kids": "u", "friends": "u", "twins": "u", "siblings": "u", "family": "u", "pair": "u",
    "couple": "u", "people": "u", "villagers": "u", "soldiers": "u", "pirates": "u", "students": "u",
    "knights": "u", "parents": "u", "travelers": "u", "travellers": "u", "explorers": "u", "astronauts": "u",
    "dogs": "n", "cats": "n", "puppies": "n", "kittens": "n", "birds": "n", "wolves": "n", "animals": "n",
    "horses": "n", "rabbits": "n", "ducks": "n", "foxes": "n", "bears": "n", "mice": "n", "robots": "n",
    "dragons": "n", "cubs": "n", "sheep": "n", "servants": "u", "workers": "u", "thieves": "u", "monsters": "n",
    "aliens": "u",
}  # fmt: skip
PLURAL_NOUNS.update(
    {plural_of(n): "n" for n, g in CHARACTER_NOUNS.items() if g == "n" and plural_of(n) not in PLURAL_NOUNS}
)
# Plural nouns that stand for "the people just mentioned" rather than introducing a new group.
COLLECTIVE = {"friends", "pair", "couple", "twins", "siblings", "children", "kids", "family"}
# "the children", "the two boys": only the young of the company, never their teacher or grandmother
YOUNG_PLURALS = frozenset({"children", "kids", "boys", "girls"})
# "Omar and Yusuf were brothers": each is the other's brother ("his brother" later)
RELATION_PLURALS = {"brothers": "brother", "sisters": "sister", "twins": "twin", "cousins": "cousin",
                    "friends": "friend", "siblings": "sibling", "neighbours": "neighbour", "neighbors": "neighbor"}  # fmt: skip
NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "several": 3, "some": 3, "many": 5}

LOCATIONS = frozenset(
    """forest woods beach park kitchen castle school river village city town street garden house home room
    bedroom cave mountain mountains lake sea ocean ship boat market library field fields desert meadow station
    train shop store bakery classroom playground attic barn farm hill bridge island harbor harbour tower palace
    jungle space moon planet background cafe restaurant office hospital museum zoo circus stage church temple road path
    valley shore pond swamp camp tent attic cellar basement yard backyard porch rooftop roof lighthouse
    spaceship station clearing glade sky clouds snow square fair festival pier dock hallway corridor""".split()
)
TIMES = (
    "at night", "at dawn", "at dusk", "at sunset", "at sunrise", "at noon", "at midnight", "in the morning",
    "in the evening", "in the afternoon", "in winter", "in summer", "in autumn", "in spring", "in the rain",
    "in the snow",
)  # fmt: skip
SETTING_PREPOSITIONS = frozenset(
    "in at on inside into near by under across through to onto toward towards around behind outside within "
    "along beside over from".split()
)

AGE_TRAITS = frozenset({"old", "young", "little", "small", "tiny", "elderly", "baby"})

# Words that may start a sentence capitalised without being a name.
COMMON_CAPITALISED = frozenset(
    """the a an he she it they we i you his her its their our my your this that these those then when while
    after before suddenly later soon finally one once there here at in on by with without from to into but and
    or so because as if meanwhile next together everyone nobody someone everybody nothing all both each
    every some many few no yes oh hello goodbye today tomorrow yesterday now far near outside inside again
    still even just only also maybe perhaps what why how where who which whose late early at last first
    second third monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december""".split()
)
STOP_AFTER_NOUN = frozenset(
    """is was were are be been who that which and but or then when while as because so to walked ran went
    sat stood came looked saw found said lived had has have did does could would will can should might
    must""".split()
)
# Verbs a sentence-initial name is followed by ("Isla woke up", "Keiko read a book") beside the regular "-ed"
# and "-s": the irregular past tense and the auxiliaries.
IRREGULAR_VERBS = frozenset(
    """was were had could would will can did ate awoke became began bent bit blew broke bought brought built caught
    chose came cut dealt dug did drew drank drove fed fell felt fled fought found flew forgot froze got gave went grew hung
    heard hid held hurt kept knelt knew laid led leapt left lent let lay lit lost made meant met paid put quit
    read rode rang rose ran said saw sought sold sent set shook shone shot showed shut sang sank sat slept slid
    spoke spent spun spat split spread sprang stood stole stuck stung struck swore swept swam swung took taught
    tore told thought threw understood woke wore won wound wrote""".split()
)

# Morph planning
BECOME_VERBS = frozenset("becomes became becoming morphs morphed morphing transforms transformed transforming".split())
TRANSFORM_VERBS = frozenset(
    """turns turned turning changes changed changing ages aged ageing aging grows grew growing melts melted
    melting fades faded fading shifts shifted shifting evolves evolved evolving dissolves dissolved""".split()
)
ACTION_VERBS = frozenset(
    """jump run sit stand walk dance smile laugh wave raise lower turn open close spread fly swim kneel crouch
    look nod wink cry sleep wake stretch climb fall roll spin lift point reach bow drive ride leap hop crawl
    kick throw catch eat drink sing play read write tilt bend lean lie rise yawn blink frown shout hug clap
    fold cross grab hold wag bark roar bloom wilt sway shake flap dive float bounce glide charge pounce rear
    gallop trot march salute squat step skip twirl shrug grin pout gaze stare swing paddle row sail stride
    leave enter move""".split()
)
