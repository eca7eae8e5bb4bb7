"""The trainers' shared library (``common``: log, checkpoints, schedules, keyed RNGs; ``data``: world
batches; ``text``: caption tokens) and one module per trained part, each runnable with ``python -m``.
Not needed at run time: the nodes load finished weights through ``laser_story.tinyworld``."""
