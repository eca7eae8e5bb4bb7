"""LASER's control codes, the one place their rules live.

A morph plan gives one code per segment P_i -> P_i+1. The planner (which code a described change gets,
how a model's reply is fitted to the segments), the plan validator and the attention policy (which
injections a code switches on, how far the frames interpolate) all read this table, so a code means the
same thing everywhere. Pure Python: no torch, no ComfyUI.
"""

from __future__ import annotations

from collections.abc import Sequence

KEEP = "3"
MEANINGS = {
    "0": "texture/appearance change (Plug-and-Play conv + self-attention Q/K injection in early steps)",
    "1": "non-rigid action or pose change (MasaCtrl K/V injection after a start step)",
    "2": "mixed change (both controls, interpolation capped at 0.8)",
    KEEP: "keep the previous segment's control",
}
CODES = tuple(MEANINGS)
# The injections each concrete code switches on: "conv" ResBlock features, "qk" self-attention queries and
# keys (Plug-and-Play), "kv" self-attention keys and values (MasaCtrl).
INJECTIONS = {"0": frozenset({"conv", "qk"}), "1": frozenset({"kv"}), "2": frozenset({"conv", "kv"})}
# The mixed control stops the interpolation short of the target: both injections pull towards the source.
ALPHA_CAP = {"2": 0.8}


def problem(codes: Sequence[str]) -> str | None:
    """What is wrong with a plan's code list, or None: every code known, and no "keep" with nothing to keep."""
    bad = [code for code in codes if code not in CODES]
    if bad:
        return f"has {bad[0]!r}; each code must be one of {', '.join(CODES)}"
    if codes and codes[0] == KEEP:
        return f"starts with {KEEP!r} (keep previous) but there is no previous control"
    return None


def resolve(codes: Sequence[str]) -> list[str]:
    """Each "keep" replaced by the code in force before it; raises ValueError on an invalid list."""
    found = problem(codes)
    if found:
        raise ValueError(f"control codes: {found}")
    resolved: list[str] = []
    for code in codes:
        resolved.append(resolved[-1] if code == KEEP else code)
    return resolved


def fit(codes: Sequence[str], segments: int) -> tuple[list[str], list[str]]:
    """A model's code list made valid for ``segments``: padded with "keep" or cut, a leading "keep" turned
    into "2" (the mixed control changes both look and pose); returns the codes and what was changed."""
    notes = []
    fitted = list(codes)
    if len(fitted) != segments:
        notes.append(f"fitted {len(fitted)} control codes to {segments} segments")
        fitted = (fitted + [KEEP] * segments)[:segments]
    if fitted and fitted[0] == KEEP:
        notes.append(f"replaced a leading {KEEP!r} (nothing to keep) with '2'")
        fitted[0] = "2"
    return fitted, notes


def for_change(looks: bool, pose: bool, first: bool) -> str:
    """The code of a segment whose look and/or pose changes; an unchanged first segment gets "2"."""
    code = "2" if looks and pose else "0" if looks else "1" if pose else KEEP
    return "2" if code == KEEP and first else code


def default_codes(segments: int) -> list[str]:
    """Codes for prompts typed without any: the non-rigid control "1" for the whole morph."""
    return ["1"] + [KEEP] * (segments - 1) if segments > 0 else []


def alpha_cap(code: str) -> float:
    return ALPHA_CAP.get(code, 1.0)
