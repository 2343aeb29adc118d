"""``python -m tracker.cli COMMAND ...``: the facetrack command (torchrun uses this form)."""
from . import main

raise SystemExit(main())
