"""``python -m tracker.cli COMMAND ...``: the facetrack command (torchrun uses this form)."""
from tracker.cli import main

raise SystemExit(main())
