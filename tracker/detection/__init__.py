"""Face detectors behind one interface, their box calibrations, the box refinement, face identities."""
