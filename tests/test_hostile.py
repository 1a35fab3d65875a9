"""Hostile input: every bad file or record is skipped with its specific reason and counted on the
MLflow run; ProteinNet text and TFRecord agree; real CLI runs train on each format."""

from __future__ import annotations

import csv
import gzip
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

import gemmi
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from protstruct.data import embedded, folder, proteinnet
from protstruct.data.records import ProteinRecord
from protstruct.data.sources import structures_source
from tests import fixtures as fx
from tests.conftest import ROOT, run_cli, store_overrides

SAMPLES = ROOT.parent / "shared" / "samples" / "proteinnet"


def _good_records(n=12):
    """n embedded chains of distinct clusters, <= 300 residues, for the 'good' part of each folder."""
    out, clusters = [], set()
    for r in embedded.load()["train"]:
        if r.length <= 300 and r.meta["cluster"] not in clusters:
            clusters.add(r.meta["cluster"])
            out.append(r)
        if len(out) == n:
            return out


def _synthetic(length, rid="SYN", seq=None):
    ca = np.stack([np.arange(length) * 3.8, np.zeros(length), np.zeros(length)], 1).astype(np.float32)
    return ProteinRecord(rid, seq or "A" * length, ca, np.ones(length, bool))


# ---- PDB / mmCIF folder ---------------------------------------------------------------------

STRUCTURE_CASES = {  # file name → expected skip reason (None: a usable chain)
    "empty.pdb": "empty_file",
    "garbage.pdb": "unreadable",
    "truncated.cif": "unreadable",
    "truncated.cif.gz": "unreadable",
    "dna_only.pdb": "not_protein",
    "ligand_only.pdb": "no_polymer",
    "short_chain.pdb": "too_short",
    "huge_chain.pdb": "too_long",
    "nan_coords.pdb": "bad_coordinates",
    "absurd_coords.cif": "bad_coordinates",
    "unknown_residues.pdb": "unknown_residues",
    "zz_duplicate_of_good0.pdb": "duplicate_id",
    "no_model.cif": "no_model",
    "nmr_ensemble.pdb": None,
    "ca_only_gz.pdb.gz": None,
    "mmcif_good.cif": None,
}


@pytest.fixture(scope="module")
def structure_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("structures")
    good = _good_records()
    for i, r in enumerate(good[:9]):
        fx.write_pdb(r, d / f"good{i}.pdb", entry=f"G{i:03d}")
    fx.write_pdb(good[9], d / "nmr_ensemble.pdb", models=3, entry="NMR1")
    fx.write_pdb(good[10], d / "ca_only_gz.pdb.gz", entry="GZ01")
    fx.write_cif(good[11], d / "mmcif_good.cif")
    (d / "empty.pdb").write_text("")
    (d / "garbage.pdb").write_bytes(bytes(range(256)) * 20)
    fx.write_cif(good[0], d / "full.cif")
    text = (d / "full.cif").read_text()
    (d / "full.cif").unlink()
    (d / "truncated.cif").write_text(text[: len(text) // 2])
    (d / "truncated.cif.gz").write_bytes(gzip.compress(text.encode(), mtime=0)[:400])
    (d / "dna_only.pdb").write_text(
        "\n".join(fx.atom_line(i + 1, "P", "DA", "A", i + 1, (6.0 * i, 0, 0)) for i in range(60)) + "\nEND\n"
    )
    (d / "ligand_only.pdb").write_text(
        "\n".join(
            fx.atom_line(i + 1, f"C{i}", "HEM", "A", 1, (1.0 * i, 0, 0), het=True, element="C") for i in range(10)
        )
        + "\nEND\n"
    )
    fx.write_pdb(_synthetic(20), d / "short_chain.pdb", entry="SHRT")
    fx.write_pdb(_synthetic(2000), d / "huge_chain.pdb", entry="HUGE")
    lines = fx.pdb_text(_synthetic(60), entry="NANC").splitlines()
    lines[5] = lines[5][:30] + "     nan" + lines[5][38:]
    (d / "nan_coords.pdb").write_text("\n".join(lines) + "\n")
    fx.write_cif(_synthetic(60, "ABSD"), d / "absurd_coords.cif")
    st = gemmi.read_structure(str(d / "absurd_coords.cif"))
    st[0][0][7][0].pos = gemmi.Position(123456.0, 0.0, 0.0)  # mmCIF can hold what PDB columns cannot
    st.make_mmcif_document().write_file(str(d / "absurd_coords.cif"))
    (d / "unknown_residues.pdb").write_text(
        "\n".join(fx.atom_line(i + 1, "CA", "XYZ", "A", i + 1, (3.8 * i, 0, 0)) for i in range(60)) + "\nEND\n"
    )
    shutil.copy(d / "good0.pdb", d / "zz_duplicate_of_good0.pdb")
    # an mmCIF block with the entry's sequence but no _atom_site loop: gemmi reads zero models
    (d / "no_model.cif").write_text(
        "data_NOMD\n_entry.id NOMD\n_entity_poly.entity_id 1\n"
        "_entity_poly.type 'polypeptide(L)'\n"
        "_entity_poly.pdbx_seq_one_letter_code_can " + "A" * 60 + "\n"
    )
    (d / "notes.txt").write_text("not a structure: ignored, not counted\n")
    return d


def test_each_hostile_structure_file_has_its_specific_reason(structure_dir, tmp_path):
    records, skips, splits = folder.load(structure_dir, "structures", cache_dir=tmp_path)
    by_file = {os.path.basename(s.where).split(":")[0]: s.reason for s in skips}
    assert by_file == {name: reason for name, reason in STRUCTURE_CASES.items() if reason}
    assert len(records) == 12 and len(skips) == sum(r is not None for r in STRUCTURE_CASES.values())
    nmr = next(r for r in records if r.id.startswith("NMR1"))
    assert nmr.n_observed == _good_records()[9].n_observed  # first model only
    assert set(splits) == {"train", "val", "test"}
    for r in records:
        assert np.isfinite(r.ca).all() and np.abs(r.ca).max() < 9999


def test_parse_is_cached_per_file_and_never_as_pickle(structure_dir, tmp_path):
    stats = [Counter() for _ in range(3)]
    first = folder.load(structure_dir, "structures", cache_dir=tmp_path, cache_stats=stats[0])
    n_files = len(folder.list_files(structure_dir, "structures"))
    assert stats[0] == {"parsed": n_files}
    assert len(list(tmp_path.rglob("*.npz"))) == n_files and not list(tmp_path.rglob("*.pkl"))
    again = folder.load(structure_dir, "structures", cache_dir=tmp_path, cache_stats=stats[1])
    assert sum(stats[1].values()) == n_files and stats[1]["parsed"] == 0  # hits
    assert [r.id for r in again[0]] == [r.id for r in first[0]] and again[1:] == first[1:]
    for a, b in zip(first[0], again[0]):
        np.testing.assert_array_equal(a.ca, b.ca)
        np.testing.assert_array_equal(a.mask, b.mask)
    folder.load(structure_dir, "structures", min_length=30, cache_dir=tmp_path, cache_stats=stats[2])  # another setting
    assert stats[2] == {"parsed": n_files}


def test_folder_without_usable_files_is_one_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match=r"data.path: .* holds no files; expected PDB/mmCIF"):
        structures_source(str(tmp_path), cache_dir=str(tmp_path / "c"))
    (tmp_path / "bad.pdb").write_text("")
    with pytest.raises(ValueError, match=r"no usable protein chain in 1 file\(s\); skipped \{'empty_file': 1\}"):
        structures_source(str(tmp_path), cache_dir=str(tmp_path / "c"))
    with pytest.raises(FileNotFoundError, match=r"data.path: .*missing does not exist"):
        structures_source(str(tmp_path / "missing"))


# ---- ProteinNet --------------------------------------------------------------------------


def _text_variant(record, mutate):
    lines = fx.proteinnet_text(record, rid=f"BAD_{mutate}").splitlines()
    i = {name: lines.index(f"[{name}]") for name in ("PRIMARY", "EVOLUTIONARY", "TERTIARY", "MASK")}
    if mutate == "evo19":
        del lines[i["EVOLUTIONARY"] + 1 : i["EVOLUTIONARY"] + 3]
    elif mutate == "tertiary2":
        del lines[i["TERTIARY"] + 3]
    elif mutate == "mask_length":
        lines[i["MASK"] + 1] += "+++"
    elif mutate == "no_tertiary":
        del lines[i["TERTIARY"] : i["TERTIARY"] + 4]
    elif mutate == "letters":
        lines[i["PRIMARY"] + 1] = "Z" + lines[i["PRIMARY"] + 1][1:]
    elif mutate == "nan":
        row = lines[i["TERTIARY"] + 1].split("\t")
        row[4] = "nan"
        lines[i["TERTIARY"] + 1] = "\t".join(row)
    elif mutate == "absurd":
        row = lines[i["TERTIARY"] + 1].split("\t")
        row[4] = "99999999.0"
        lines[i["TERTIARY"] + 1] = "\t".join(row)
    elif mutate == "ragged_rows":
        lines[i["TERTIARY"] + 2] += "\t1.0"
    return "\n".join(lines) + "\n\n"


TEXT_CASES = {
    "evo19": "wrong_row_count",
    "tertiary2": "wrong_row_count",
    "mask_length": "wrong_row_count",
    "no_tertiary": "missing_field",
    "letters": "bad_sequence",
    "nan": "bad_coordinates",
    "absurd": "bad_coordinates",
    "ragged_rows": "wrong_row_count",
}
TFRECORD_CASES = {
    "BAD_TF_NO_TERTIARY": "missing_field",
    "bad.tfrecord#1": "missing_field",
    "BAD_TF_EVO19": "wrong_row_count",
    "BAD_TF_EMPTY": "empty_sequence",
    "bad.tfrecord#4": "bad_tfrecord",
}


@pytest.fixture(scope="module")
def proteinnet_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("proteinnet")
    good = _good_records()
    (d / "good_text.txt").write_text("".join(fx.proteinnet_text(r) + "\n" for r in good[:6]))
    fx.write_tfrecord(d / "good.tfrecord", [fx.sequence_example(r) for r in good[6:]])
    base = good[0]
    bad_text = "".join(_text_variant(base, m) for m in TEXT_CASES)
    bad_text += fx.proteinnet_text(_synthetic(20, "SHORT_TEXT")) + "\n"
    bad_text += fx.proteinnet_text(good[1]) + "\n"  # the same id as a good record → duplicate_id
    (d / "zz_bad_text.txt").write_text(bad_text)
    fx.write_tfrecord(
        d / "bad.tfrecord",
        [
            fx.sequence_example(base, drop=("tertiary",), rid="BAD_TF_NO_TERTIARY"),
            fx.sequence_example(base, drop=("id",)),
            fx.sequence_example(base, evo_width=19, rid="BAD_TF_EVO19"),
            fx.sequence_example(ProteinRecord("BAD_TF_EMPTY", "", np.zeros((0, 3), np.float32), np.zeros(0, bool))),
            b"\xff\xff\xff\xff",  # a well-framed TFRecord entry whose payload is not a SequenceExample
        ],
    )
    fx.write_tfrecord(
        d / "full.tfrecord",
        [fx.sequence_example(good[2], rid="TRUNC_OK"), fx.sequence_example(good[3], rid="TRUNC_CUT")],
    )
    data = (d / "full.tfrecord").read_bytes()
    (d / "full.tfrecord").unlink()
    (d / "truncated.tfrecord").write_bytes(data[:-40])
    (d / "empty.txt").write_text("")
    (d / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    return d


def _reasons_by_where(skips):
    return {s.where: s.reason for s in skips}


def test_each_bad_text_record_has_its_specific_reason(proteinnet_dir):
    _, skips = proteinnet.read_text(proteinnet_dir / "zz_bad_text.txt")
    got = _reasons_by_where(skips)
    for mutate, reason in TEXT_CASES.items():
        assert got[f"BAD_{mutate}"] == reason, (mutate, got)
    assert got["SHORT_TEXT"] == "too_short"


def test_each_bad_tfrecord_has_its_specific_reason(proteinnet_dir):
    _, skips = proteinnet.read_tfrecord(proteinnet_dir / "bad.tfrecord")
    assert _reasons_by_where(skips) == TFRECORD_CASES
    recs, skips = proteinnet.read_tfrecord(proteinnet_dir / "truncated.tfrecord")
    assert [r.id for r in recs] == ["TRUNC_OK"] and [s.reason for s in skips] == ["truncated_tfrecord"]


PROTEINNET_SKIPS = {
    "wrong_row_count": 5,
    "missing_field": 3,
    "bad_sequence": 1,
    "bad_coordinates": 2,
    "too_short": 1,
    "duplicate_id": 1,
    "truncated_tfrecord": 1,
    "empty_file": 1,
    "not_proteinnet": 1,
    "empty_sequence": 1,
    "bad_tfrecord": 1,
}
EXPECTED_SKIPS = {"structures": Counter(r for r in STRUCTURE_CASES.values() if r), "proteinnet": PROTEINNET_SKIPS}


def test_folder_counts_every_skip(proteinnet_dir, tmp_path):
    records, skips, _ = folder.load(proteinnet_dir, "proteinnet", cache_dir=tmp_path)
    counts = Counter(s.reason for s in skips)
    assert counts == PROTEINNET_SKIPS
    assert len(records) == 13  # 12 good + the intact first record of the truncated file
    for r in records:
        assert r.pssm is not None and np.isfinite(r.pssm).all()


def test_text_and_tfrecord_written_from_one_record_agree(tmp_path):
    r = _good_records(1)[0]
    (tmp_path / "t.txt").write_text(fx.proteinnet_text(r))
    fx.write_tfrecord(tmp_path / "t.tfrecord", [fx.sequence_example(r)])
    (a,), _ = proteinnet.read_file(tmp_path / "t.txt", 10)
    (b,), _ = proteinnet.read_file(tmp_path / "t.tfrecord", 10)
    assert a.sequence == b.sequence == r.sequence
    np.testing.assert_allclose(a.distance_matrix(), r.distance_matrix(), atol=2e-3)
    np.testing.assert_allclose(a.distance_matrix(), b.distance_matrix(), atol=2e-3)
    np.testing.assert_allclose(a.pssm, b.pssm, atol=1e-6)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples/proteinnet is not beside the checkout")
def test_the_published_samples_parse_and_agree():
    (a,), skips_a = proteinnet.read_file(SAMPLES / "text_sample")
    (b,), skips_b = proteinnet.read_file(SAMPLES / "tf_sample")
    assert skips_a == skips_b == []
    assert a.id == b.id == "TBM#T0366" and a.sequence == b.sequence and a.length == 106
    assert a.n_observed == b.n_observed == 84
    np.testing.assert_allclose(a.distance_matrix(), b.distance_matrix(), atol=1e-3)
    np.testing.assert_allclose(a.pssm, b.pssm, atol=1e-6)  # text has 21 rows, TFRecord 20 per step


# ---- the real CLI on each format, counts recorded on the run ----------------------------------


@pytest.mark.parametrize("kind", ["structures", "proteinnet"])
def test_cli_trains_on_the_format_and_records_skips_on_the_run(kind, structure_dir, proteinnet_dir, tmp_path):
    path = structure_dir if kind == "structures" else proteinnet_dir
    features = "features=pssm" if kind == "proteinnet" else "features=sequence"
    proc = run_cli(
        [
            f"data={kind}",
            f"data.path={path}",
            "debug=smoke",
            features,
            "tracking.experiment=hostile",
            *store_overrides(tmp_path),
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
        env={"PROTSTRUCT_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("hostile")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    _, skips, _ = folder.load(path, kind, cache_dir=tmp_path / "cache")  # the same cached parse
    expected = Counter(s.reason for s in skips)
    assert expected == EXPECTED_SKIPS[kind]  # every hostile input of the folder reached the run
    metrics = run.data.metrics
    assert metrics["data/skipped"] == sum(expected.values())
    for reason, n in expected.items():
        assert metrics[f"data/skipped/{reason}"] == n
    local = client.download_artifacts(run.info.run_id, "data/skipped.csv", str(tmp_path))
    with open(local) as fh:
        rows = list(csv.DictReader(fh))
    assert Counter(r["reason"] for r in rows) == expected
    assert np.isfinite(metrics["test/rmse"]) and metrics["data/train_proteins"] > 0
    if kind == "structures":  # no split files: split by homology, and the run logs how (README: `data/split/*`)
        info: dict = {}
        folder.load(path, kind, cache_dir=tmp_path / "cache", split_info=info)
        assert metrics["data/split/components"] == info["components"] >= 3
        assert metrics["data/split/largest_component"] == info["largest_component"]
        assert 0 < metrics["data/split/largest_component_share"] < 1
        assert run.data.tags["data.split.method"].startswith("mmseqs2")


# ---- `python -m protstruct.data summarize` on each format -----------------------------------


@pytest.mark.parametrize("kind", ["structures", "proteinnet"])
def test_summarize_lists_the_kept_chains_and_every_skip_reason(kind, structure_dir, proteinnet_dir, tmp_path):
    """README: `python -m protstruct.data summarize path/` prints chains kept, skipped (with
    reasons) and lengths; the folder's format is detected (no --kind)."""
    path = structure_dir if kind == "structures" else proteinnet_dir
    proc = subprocess.run(
        [sys.executable, "-m", "protstruct.data", "summarize", str(path), "--cache-dir", str(tmp_path / "cache")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    records, _, splits = folder.load(path, kind, cache_dir=tmp_path / "cache")  # what a run would read
    kept = (
        f"chains kept: {len(records)} (train {splits.count('train')}, val {splits.count('val')}, "
        f"test {splits.count('test')})"
    )
    assert kept in lines and len(records) == (12 if kind == "structures" else 13)
    expected = EXPECTED_SKIPS[kind]
    assert f"skipped: {sum(expected.values())}" in lines
    listed = {}
    for line in lines[lines.index(f"skipped: {sum(expected.values())}") + 1 :]:  # "  reason: count" lines
        if not (m := re.fullmatch(r"  ([a-z_]+): (\d+)", line)):
            break
        listed[m[1]] = int(m[2])
    assert listed == expected
    histogram = lines[lines.index("length (residues) histogram:") + 1 :][:6]
    assert sum(int(line.split(":")[1].split()[0]) for line in histogram) == len(records)
    assert lines[-1].startswith("observed residues per chain: median")
