#!/usr/bin/env bash
# Make .venv ready for a target: the Python named by .python-version, the system
# libraries the extras need, and this project installed editable with EXTRAS.
# Usage: scripts/bootstrap.sh EXTRAS   (e.g. "lerobot" or "lerobot,vlm,train,dev")
# Re-running is cheap: pip runs only when pyproject.toml or EXTRAS changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
want=$(tr -d '[:space:]' < .python-version)

find_python() {
  if command -v pyenv >/dev/null 2>&1 && p=$(pyenv which python 2>/dev/null) \
     && "$p" -c "import sys; assert sys.version.startswith('$want')" 2>/dev/null; then
    echo "$p"; return
  fi
  for p in "python$want" "python${want%.*}" python3; do
    if command -v "$p" >/dev/null 2>&1 \
       && "$p" -c "import sys; assert sys.version.startswith('$want')" 2>/dev/null; then
      command -v "$p"; return
    fi
  done
  echo "error: Python $want (from .python-version) not found. Install it, e.g. 'pyenv install $want'." >&2
  exit 1
}

# System libraries: FFmpeg for torchcodec (lerobot's decoder), the X/EGL client
# libraries Qt loads even when it renders offscreen, Xvfb for a real window.
need_debs=()
for pkg in ffmpeg libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 \
           libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 xvfb; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_debs+=("$pkg")
done
if ((${#need_debs[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages: ${need_debs[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_debs[@]}" >/dev/null
  else
    echo "warning: missing system packages: ${need_debs[*]}" >&2
    echo "         install them with: sudo apt-get install ${need_debs[*]}" >&2
  fi
fi

py=$(find_python)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import sys; assert sys.version.startswith('$want')" 2>/dev/null; then
  rm -rf .venv
  "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi

stamp=".venv/.installed-$(echo "$extras" | tr ',' '-')"
digest=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  spec="."; [ -n "$extras" ] && spec=".[${extras}]"
  .venv/bin/python -m pip install -q -e "$spec"
  echo "$digest" > "$stamp"
fi
