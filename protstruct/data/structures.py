"""PDB / mmCIF files (optionally gzipped) → ProteinRecord, one per protein chain, via gemmi.

Rules (documented in the README): first model only; one record per polymer chain of L-amino
acids; the highest-occupancy C-alpha among alternate locations; modified residues mapped to
their parent amino acid when gemmi knows it, otherwise kept as a masked ``X``; residues that
are missing (SEQRES/entity positions without coordinates, author-numbering jumps) become masked
positions, never closed up.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from protstruct.data.choices import MIN_LENGTH
from protstruct.data.records import STANDARD_AA, ProteinRecord

log = logging.getLogger(__name__)

STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")
MAX_ABS_COORD = 9999.0  # Å; PDB format cannot even write larger values
MAX_GAP = 1000  # a numbering jump larger than this is a renumbering, not missing residues


@dataclass(frozen=True)
class Skip:
    """Something that was not turned into a record, and why (a short, stable reason code)."""

    where: str
    reason: str
    detail: str = ""


def is_structure_file(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(STRUCTURE_SUFFIXES)


def one_letter(resname: str) -> str:
    """Parent one-letter code of a residue name, or 'X' when it is not a known amino acid."""
    info = gemmi.find_tabulated_residue(resname)
    if info is None or not info.is_amino_acid():
        return "X"
    code = info.one_letter_code.upper()
    return code if code in STANDARD_AA else "X"


def _best_ca(residue: gemmi.Residue):
    best = None
    for atom in residue:
        if atom.name == "CA" and atom.element.name == "C" and (best is None or atom.occ > best.occ):
            best = atom
    return best


def _dedupe_microheterogeneity(residues: list) -> list:
    """Two residues at one position (point mutants in one crystal): keep the better-occupied."""
    kept: list = []
    for res in residues:
        if kept and kept[-1].seqid == res.seqid:
            prev_ca, ca = _best_ca(kept[-1]), _best_ca(res)
            if ca is not None and (prev_ca is None or ca.occ > prev_ca.occ):
                kept[-1] = res
            continue
        kept.append(res)
    return kept


def _positions(residues: list, entity) -> tuple[str, list[int]]:
    """Map residues onto sequence positions: entity sequence when available, else numbering."""
    full = list(entity.full_sequence) if entity is not None else []
    if full and all(r.label_seq is not None and 0 < r.label_seq <= len(full) for r in residues):
        seq = "".join(one_letter(gemmi.Entity.first_mon(m)) for m in full)
        return seq, [r.label_seq - 1 for r in residues]
    positions, pos = [], 0
    for i, res in enumerate(residues):
        if i > 0:
            jump = res.seqid.num - residues[i - 1].seqid.num
            # same number + insertion code → next position; a jump → masked missing residues
            pos += 1 + (min(jump, MAX_GAP) - 1 if jump > 1 else 0)
        positions.append(pos)
    letters = ["X"] * (pos + 1)
    for res, p in zip(residues, positions):
        letters[p] = one_letter(res.name)
    return "".join(letters), positions


def chain_record(chain, entity, record_id: str, source: str, min_length: int):
    """One chain → (ProteinRecord, None) or (None, Skip)."""
    polymer = chain.get_polymer()
    if len(polymer) == 0 or polymer.check_polymer_type() not in (
        gemmi.PolymerType.PeptideL,
        gemmi.PolymerType.PeptideD,
    ):
        return None, Skip(record_id, "not_protein")
    residues = _dedupe_microheterogeneity(list(polymer))
    seq, positions = _positions(residues, entity)
    ca = np.zeros((len(seq), 3), np.float32)
    mask = np.zeros(len(seq), bool)
    for res, p in zip(residues, positions):
        atom = _best_ca(res)
        if atom is None or seq[p] == "X":
            continue
        xyz = np.array([atom.pos.x, atom.pos.y, atom.pos.z], np.float64)
        if not np.all(np.isfinite(xyz)) or np.abs(xyz).max() > MAX_ABS_COORD:
            return None, Skip(record_id, "bad_coordinates", f"residue {res.name} {res.seqid}")
        ca[p], mask[p] = xyz, True
    if set(seq) == {"X"}:
        names = sorted({r.name for r in residues})[:5]
        return None, Skip(record_id, "unknown_residues", f"no standard amino acid among {names}")
    if mask.sum() < min_length:
        return None, Skip(record_id, "too_short", f"{int(mask.sum())} residues with CA < {min_length}")
    return ProteinRecord(record_id, seq, ca, mask, source), None


def _not_text(path: Path) -> str | None:
    """Why a file cannot be PDB/mmCIF text (binary bytes, a broken gzip), or None."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4096)
    except (OSError, EOFError) as exc:
        return f"corrupt or truncated gzip: {exc}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary content, not a PDB/mmCIF text file"
    return "binary content, not a PDB/mmCIF text file" if b"\x00" in head else None


def read_structure_file(path: Path, source: str, min_length: int = MIN_LENGTH, entry_id: str | None = None):
    """All protein chains of one file → (records, skips). Never raises for a bad file."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return [], [Skip(str(path), "empty_file")]
        why = _not_text(path)
        if why:
            return [], [Skip(str(path), "unreadable", why)]
        st = gemmi.read_structure(str(path), merge_chain_parts=True)
    except Exception as exc:  # gemmi raises RuntimeError/ValueError/OSError for unreadable input
        return [], [Skip(str(path), "unreadable", str(exc).splitlines()[0][:200])]
    if len(st) == 0:
        return [], [Skip(str(path), "no_model")]
    st.setup_entities()
    # the entry id from HEADER / _entry.id when the file has one, else the file name
    header_id = dict(st.info).get("_entry.id", "")  # gemmi.InfoMap itself has no .get()
    entry = (entry_id or header_id or st.name or path.name.split(".")[0]).upper()
    records, skips = [], []
    model = st[0]
    for chain in model:
        if len(chain.get_polymer()) == 0:
            continue  # waters / ligand-only chains are not chains we could skip meaningfully
        subchain = chain.get_polymer().subchain_id()
        entity = st.get_entity_of(chain.get_polymer()) if subchain else None
        record, skip = chain_record(chain, entity, f"{entry}_{chain.name}", source, min_length)
        if record is not None:
            records.append(record)
        else:
            skips.append(Skip(f"{path}:{skip.where}", skip.reason, skip.detail))
    if not records and not skips:
        skips.append(Skip(str(path), "no_polymer"))
    return records, skips
