"""The data choices a user makes on the command line, in one light module (no numpy, no
TensorFlow), so that ``--help`` and argument checks stay fast."""

from __future__ import annotations

MIN_LENGTH = 40  # residues with a C-alpha: shorter chains are skipped (data.min_length)
MAX_LENGTH = 1000  # residues: longer chains are skipped (data.max_length)
THINNINGS = (30, 50, 70, 90, 95, 100)  # ProteinNet's training_<N> sets (data.thinning)
VALIDATION_BINS = (10, 20, 30, 40, 50, 70, 90)  # ProteinNet's validation identity bins (data.validation_identity)
