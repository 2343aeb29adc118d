# Sourced by every bin/ command: makes sure .venv/ exists with facetrack installed.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.facetrack-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.cfg" -nt "$STAMP" ]; then
  PYTHON="${FACETRACK_PYTHON:-python3}"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "facetrack: needs Python 3.11 or newer as '$PYTHON' (set FACETRACK_PYTHON)" >&2
    exit 1
  fi
  if [ -f "$STAMP" ]; then
    echo "facetrack: setup.cfg changed, updating the installation in $VENV..." >&2
  else
    echo "facetrack: installing into $VENV (first run only, about 3 minutes)..." >&2
  fi
  { [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"; } &&
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$ROOT[dlib,dev]" >&2 ||
    { echo "facetrack: installation into $VENV failed (see pip's messages above)" >&2; exit 1; }
  touch "$STAMP"
fi
PY="$VENV/bin/python"
