#!/usr/bin/env bash
# CI: what the napari plugin's GUI tests need on a bare Debian/Ubuntu machine: an X server
# (Xvfb; pytest-xvfb starts it), Mesa's software OpenGL for napari's canvas, and the X/xcb
# libraries Qt 6's xcb platform plugin loads. Installs only what is missing (CI runs as root).
set -euo pipefail
PACKAGES=(
  xvfb xauth                                  # the virtual display
  libgl1 libglx-mesa0 libgl1-mesa-dri libegl1 # OpenGL through Mesa (llvmpipe)
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-xkb1
  libfontconfig1 libdbus-1-3                  # Qt's xcb platform plugin
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null; then
    echo "gui_deps.sh: install ${missing[*]} (no apt-get here)" >&2
    exit 1
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
