"""The built-in tiny model: its runtime (``model`` builds it from ComfyUI's classes, ``weights`` saves, finds
by ``kind`` and loads the shipped files), its procedural ``world``, the weight-free ``judge`` and
``evaluate``. Trainers live in ``laser_story.training``."""
