"""The one currency between data sources and the rest of protstruct."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STANDARD_AA = "ACDEFGHIKLMNPQRSTVWY"


# the residue names of STANDARD_AA, in its order (for writing PDB files: benchmarks, test fixtures)
_NAMES = "ALACYSASPGLUPHEGLYHISILELYSLEUMETASNPROGLNARGSERTHRVALTRPTYR"  # three letters each
RESIDUE_NAMES = {aa: _NAMES[3 * i : 3 * i + 3] for i, aa in enumerate(STANDARD_AA)}
_AATYPE_TABLE = np.full(256, 20, np.int32)  # byte → residue type; anything unexpected is unknown (20)
_AATYPE_TABLE[np.frombuffer(STANDARD_AA.encode(), np.uint8)] = np.arange(20)


def aatype_codes(sequence: str) -> np.ndarray:
    """Residue types of a sequence (or of many, joined) as int32: 0-19 in STANDARD_AA order, 20 for
    anything else — one table look-up per residue, fast enough for 10⁷ residues."""
    return _AATYPE_TABLE[np.frombuffer(sequence.encode("ascii", "replace"), np.uint8)]


@dataclass(frozen=True)
class ProteinRecord:
    """One protein chain: sequence, C-alpha coordinates (Å) and a per-residue mask.

    Positions whose coordinates are unknown (missing residues, numbering gaps, unknown residue
    types) stay in the record with ``mask == False``: they are never closed up, so |i - j| is a
    true sequence separation.
    """

    id: str
    sequence: str
    ca: np.ndarray  # (L, 3) float32, Å; zeros where mask is False
    mask: np.ndarray  # (L,) bool
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)
    pssm: np.ndarray | None = field(default=None, compare=False)  # (L, 20) when the source has one

    def __post_init__(self):
        n = len(self.sequence)
        if self.ca.shape != (n, 3):
            raise ValueError(f"record {self.id}: ca has shape {self.ca.shape}, expected ({n}, 3)")
        if self.mask.shape != (n,):
            raise ValueError(f"record {self.id}: mask has shape {self.mask.shape}, expected ({n},)")
        if self.pssm is not None and self.pssm.shape != (n, 20):
            raise ValueError(f"record {self.id}: pssm has shape {self.pssm.shape}, expected ({n}, 20)")

    def aatype(self) -> np.ndarray:
        """Residue types as integers: 0-19 in STANDARD_AA order, 20 for unknown (X)."""
        return aatype_codes(self.sequence)

    @property
    def length(self) -> int:
        return len(self.sequence)

    @property
    def n_observed(self) -> int:
        return int(self.mask.sum())

    def distance_matrix(self) -> np.ndarray:
        """C-alpha distance matrix in Å (L, L); entries involving masked residues are 0."""
        diff = self.ca[:, None, :] - self.ca[None, :, :]
        dist = np.sqrt((diff.astype(np.float64) ** 2).sum(-1)).astype(np.float32)
        return np.where(self.pair_mask(), dist, 0.0).astype(np.float32)

    def pair_mask(self) -> np.ndarray:
        return self.mask[:, None] & self.mask[None, :]
