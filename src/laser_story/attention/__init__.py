"""Attention control for ComfyUI's SD1.x/SD2.x UNet (no ComfyUI import at import time).

``state`` (feature bank, step matching, cond/uncond chunking, run lifecycle) and ``sampling`` (conditioning,
schedules, progress, DDIM inversion) are shared by every pipeline; each pipeline's policy has its own
module: ``laser`` (LASER's controls and patches) with its orchestration in ``morph``.
"""
