"""The gemmi-based reader on small hand-written PDB files."""

from __future__ import annotations

import numpy as np

from protstruct.data.structures import read_structure_file


def _atom(serial, name, resname, chain, resnum, x, alt=" ", occ=1.0, icode=" ", het=False):
    rec = "HETATM" if het else "ATOM  "
    return (
        f"{rec}{serial:5d} {name:<4}{alt}{resname:>3} {chain}{resnum:4d}{icode}   "
        f"{x:8.3f}{0.0:8.3f}{0.0:8.3f}{occ:6.2f}{20.0:6.2f}          {name[0]:>2}"
    )


def _chain(chain, resnums, resname="ALA", start_serial=1):
    return [_atom(start_serial + i, "CA", resname, chain, n, 3.8 * i) for i, n in enumerate(resnums)]


def _write(tmp_path, lines, name="x.pdb"):
    path = tmp_path / name
    path.write_text("\n".join([*lines, "END"]) + "\n")
    return path


def test_numbering_gap_becomes_masked_positions(tmp_path):
    path = _write(tmp_path, _chain("A", list(range(1, 21)) + list(range(24, 44))))
    (rec,), _skips = read_structure_file(path, "test", min_length=10)
    assert rec.length == 43 and rec.n_observed == 40
    assert not rec.mask[20:23].any() and rec.sequence[20:23] == "XXX"


def test_modified_residue_maps_to_its_parent(tmp_path):
    lines = (
        _chain("A", range(1, 6))
        + [_atom(99, "CA", "MSE", "A", 6, 19.0, het=True)]
        + [_atom(100 + i, "CA", "ALA", "A", 7 + i, 22.8 + 3.8 * i) for i in range(6)]
    )
    (rec,), _ = read_structure_file(_write(tmp_path, lines), "test", min_length=10)
    assert rec.sequence[5] == "M" and rec.mask[5]


def test_highest_occupancy_altloc_is_used(tmp_path):
    lines = _chain("A", range(1, 11))
    lines[2] = _atom(3, "CA", "ALA", "A", 3, 100.0, alt="A", occ=0.3)
    lines.insert(3, _atom(50, "CA", "ALA", "A", 3, 7.6, alt="B", occ=0.7))
    (rec,), _ = read_structure_file(_write(tmp_path, lines), "test", min_length=5)
    assert rec.ca[2, 0] == np.float32(7.6)


def test_short_chain_and_bad_files_are_skipped_with_reasons(tmp_path):
    _, skips = read_structure_file(_write(tmp_path, _chain("A", range(1, 6))), "test", min_length=40)
    assert [s.reason for s in skips] == ["too_short"]
    empty = tmp_path / "empty.pdb"
    empty.write_text("")
    assert [s.reason for s in read_structure_file(empty, "test")[1]] == ["empty_file"]
    garbage = tmp_path / "garbage.cif"
    garbage.write_bytes(b"\x00\xff\x13 not a structure \x00" * 50)
    assert [s.reason for s in read_structure_file(garbage, "test")[1]] == ["unreadable"]
