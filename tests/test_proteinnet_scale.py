"""ProteinNet as released (casp folders: thinnings, ProteinNet's own validation/test, identity bins),
a per-file parse cache that cannot run code, and bad inputs at scale — on real generated files."""

from __future__ import annotations

import errno
import io
import os
import pickle
import shutil
import tracemalloc
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

import protstruct.config  # noqa: F401  (the abspath resolver the data configs use)
from protstruct.data import __main__ as data_cli
from protstruct.data import cache, choices, folder, proteinnet, synthetic_casp
from protstruct.data.casp import validation_bin
from protstruct.data.sources import proteinnet_source
from tests import fixtures as fx
from tests.conftest import CONF, run_cli, store_overrides


def _rec_ids(records):
    return [r.id for r in records]


class _CountingLoad:
    """``folder.load`` that keeps the cache outcomes of its latest call (``stats``)."""

    def __init__(self):
        self.stats = Counter()

    def __call__(self, *args, **kwargs):
        self.stats = Counter()
        return folder.load(*args, cache_stats=self.stats, **kwargs)


@pytest.fixture
def load():
    return _CountingLoad()


def _parsed_and_reused(stats):
    """Files parsed / served from the cache (by stat, or by hash for files changed < 2 s ago)."""
    return stats["parsed"], stats["hit"] + stats["rehashed"]


def _ids_in(path):
    return [line.split(b"\n")[1].decode() for line in path.read_bytes().split(b"[ID]")[1:]]


@pytest.fixture(scope="module")
def casp(tmp_path_factory):
    """200 training records in training_50, their nested subset in training_30, 14 validation
    records (2 per identity bin), 10 testing records, and files that are not part of the release."""
    d = tmp_path_factory.mktemp("casp") / "casp12"
    counts = synthetic_casp.write(d, 200, thinnings=(30, 50), seed=1)
    (d / "README").write_text("not a record file: never read\n")
    for f in d.iterdir():
        _age(f)
    return d, counts


def test_generated_folder_looks_like_the_release(casp):
    d, counts = casp
    assert sorted(p.name for p in d.iterdir()) == ["README", "testing", "training_30", "training_50", "validation"]
    t30, t50 = _ids_in(d / "training_30"), _ids_in(d / "training_50")
    assert len(t50) == 200 and 0 < len(t30) < 200 and set(t30) <= set(t50)  # nested thinnings
    assert counts == {"training_30": len(t30), "training_50": 200, "validation": 14, "testing": 10}
    assert {validation_bin(i) for i in _ids_in(d / "validation")} == set(choices.VALIDATION_BINS)
    recs, skips = proteinnet.read_text(d / "training_30")
    assert skips == [] and len(recs) == len(t30)
    for r in recs[:20]:
        assert 60 <= r.length <= 300 and r.pssm is not None
        both = r.mask[1:] & r.mask[:-1]
        steps = np.linalg.norm(np.diff(r.ca, axis=0), axis=1)[both]
        assert np.allclose(steps, 3.8, atol=0.01)


def test_mixed_thinnings_need_a_choice_and_only_the_chosen_files_are_read(casp, tmp_path, load):
    d, _ = casp
    with pytest.raises(ValueError, match=r"thinnings \[30, 50\]; choose one with data.thinning"):
        load(d, "proteinnet", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"data.thinning=70: .* holds thinning\(s\) \[30, 50\] only"):
        load(d, "proteinnet", cache_dir=tmp_path, thinning=70)
    with pytest.raises(ValueError, match="data.thinning: expected one of 30, 50, 70, 90, 95, 100"):
        load(d, "proteinnet", cache_dir=tmp_path, thinning=40)
    records, skips, splits = load(d, "proteinnet", cache_dir=tmp_path, thinning=30)
    assert load.stats == {"parsed": 3} and skips == []  # training_30, validation, testing only
    by = {s: [r.id for r, sp in zip(records, splits) if sp == s] for s in ("train", "val", "test")}
    assert by == {
        "train": _ids_in(d / "training_30"),
        "val": _ids_in(d / "validation"),
        "test": _ids_in(d / "testing"),
    }  # ProteinNet's own split, never re-split
    records, _, splits = load(d, "proteinnet", cache_dir=tmp_path, thinning=50)
    assert _parsed_and_reused(load.stats) == (1, 2) and splits.count("train") == 200


def test_validation_identity_bins_are_kept_and_reach_each_record(casp, tmp_path):
    d, _ = casp
    s = proteinnet_source(str(d), cache_dir=str(tmp_path), thinning=30)
    assert sorted(r.meta[folder.VALIDATION_IDENTITY] for r in s.val) == sorted(2 * list(choices.VALIDATION_BINS))
    assert all(folder.VALIDATION_IDENTITY not in r.meta for r in s.train + s.test)
    s30 = proteinnet_source(str(d), cache_dir=str(tmp_path), thinning=30, validation_identity=30)
    assert [r.meta["validation_identity"] for r in s30.val] == [30, 30] and _rec_ids(s30.train) == _rec_ids(s.train)
    assert all(r.id.startswith("30#") for r in s30.val) and _rec_ids(s30.test) == _rec_ids(s.test)
    both = proteinnet_source(str(d), cache_dir=str(tmp_path), thinning=30, validation_identity=[30, 90])
    assert sorted(r.meta["validation_identity"] for r in both.val) == [30, 30, 90, 90]
    with pytest.raises(ValueError, match="data.validation_identity: expected one or more of 10, 20"):
        proteinnet_source(str(d), cache_dir=str(tmp_path), thinning=30, validation_identity=25)


def test_the_config_and_summarize_take_the_same_choices(casp, tmp_path):
    d, _ = casp
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "data=proteinnet",
                f"data.path={d}",
                "data.thinning=30",
                "data.validation_identity=70",
                f"data.cache_dir={tmp_path}",
            ],
        )
    splits = instantiate(cfg.data.source)
    assert len(splits.train) == len(_ids_in(d / "training_30")) and len(splits.test) == 10
    assert [r.meta["validation_identity"] for r in splits.val] == [70, 70]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert (
            data_cli.main(
                ["summarize", str(d), "--cache-dir", str(tmp_path), "--thinning", "30", "--validation-identity", "30"]
            )
            == 0
        )
        assert data_cli.main(["summarize", str(d), "--cache-dir", str(tmp_path)]) == 2
    assert f"(train {len(splits.train)}, val 2, test 10)" in out.getvalue()
    assert "validation identity bins: 30%: 2" in out.getvalue()
    assert "choose one with data.thinning=N (summarize: --thinning N), one of [30, 50]" in err.getvalue()


def test_tfrecord_release_layout_keeps_the_split_and_agrees_with_text(tmp_path, load):
    synthetic_casp.write(tmp_path / "text", 24, thinnings=(30, 50), seed=3, validation=7, testing=4)
    synthetic_casp.write(
        tmp_path / "tf", 24, thinnings=(30, 50), fmt="tfrecord", seed=3, validation=7, testing=4, shard=5
    )
    assert sorted(p.name for p in (tmp_path / "tf" / "training" / "50").iterdir()) == ["1", "2", "3", "4", "5"]
    with pytest.raises(ValueError, match=r"thinnings \[30, 50\]"):
        load(tmp_path / "tf", "proteinnet", cache_dir=tmp_path / "c")
    text = proteinnet_source(str(tmp_path / "text"), cache_dir=str(tmp_path / "c"), thinning=50, validation_identity=10)
    tf = proteinnet_source(str(tmp_path / "tf"), cache_dir=str(tmp_path / "c"), thinning=50, validation_identity=10)
    for (_, a), (_, b) in zip(text.items(), tf.items()):
        assert _rec_ids(a) == _rec_ids(b) and len(a) > 0
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.distance_matrix(), y.distance_matrix(), atol=2e-2)
            np.testing.assert_allclose(x.pssm, y.pssm, atol=1e-6)
    assert [r.meta["validation_identity"] for r in tf.val] == [10]


# ---- the cache -----------------------------------------------------------------------------


@pytest.fixture()
def small_folder(tmp_path):
    """Six one-record ProteinNet text files (no split names: split by identity cluster)."""
    d = tmp_path / "pn"
    d.mkdir()
    rng = np.random.default_rng(5)
    for i in range(6):
        (d / f"rec{i}.txt").write_text(synthetic_casp.text(synthetic_casp.record(rng, f"REC{i}")))
    return d


def _age(path, seconds=60):
    """Make a file look older than the racy window (as files are, outside tests)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_adding_one_file_parses_one_file(small_folder, tmp_path, monkeypatch, load):
    monkeypatch.setattr(cache, "RACY_NS", 0)  # trust fresh stats: this test never rewrites a file
    load(small_folder, "proteinnet", cache_dir=tmp_path)
    assert load.stats == {"parsed": 6}
    (small_folder / "rec6.txt").write_text((small_folder / "rec0.txt").read_text().replace("REC0", "REC6"))
    records, _, _ = load(small_folder, "proteinnet", cache_dir=tmp_path)
    assert load.stats == {"parsed": 1, "hit": 6} and len(records) == 7
    assert not list(tmp_path.rglob("*.pkl"))


def test_a_changed_file_is_never_served_stale(small_folder, tmp_path, load):
    f = small_folder / "rec0.txt"
    _age(f)
    (old,) = [r for r in load(small_folder, "proteinnet", cache_dir=tmp_path)[0] if r.id == "REC0"]
    st = os.stat(f)
    text = f.read_text()
    i = text.index("[PRIMARY]\n") + len("[PRIMARY]\n") + 5
    changed = text[:i] + ("W" if text[i] != "W" else "Y") + text[i + 1 :]  # same size, other content
    f.write_text(changed)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored: only ctime (and the hash) differ
    assert os.stat(f).st_size == st.st_size and os.stat(f).st_mtime_ns == st.st_mtime_ns
    (new,) = [r for r in load(small_folder, "proteinnet", cache_dir=tmp_path)[0] if r.id == "REC0"]
    assert _parsed_and_reused(load.stats) == (1, 5)
    assert new.sequence != old.sequence and new.sequence == proteinnet.read_text(f)[0][0].sequence
    os.utime(f)  # touched, content unchanged: hashed again, not parsed
    load(small_folder, "proteinnet", cache_dir=tmp_path)
    assert _parsed_and_reused(load.stats) == (0, 6) and load.stats["rehashed"] >= 1


def test_a_planted_pickle_is_rejected_and_never_runs(small_folder, tmp_path, load):
    first, _, _ = load(small_folder, "proteinnet", cache_dir=tmp_path)
    marker = tmp_path / "payload_ran"
    payload = pickle.dumps(fx.PicklePayload(str(marker)))
    entries = list(tmp_path.rglob("*.npz"))
    assert len(entries) == 6
    for i, entry in enumerate(entries):
        if i % 2:
            entry.write_bytes(payload)  # a raw pickle where an entry should be
        else:  # a well-formed npz whose member is a pickled object array
            with open(entry, "wb") as fh:
                np.savez(fh, meta=np.array([fx.PicklePayload(str(marker))], dtype=object))
    again, _, _ = load(small_folder, "proteinnet", cache_dir=tmp_path)
    assert not marker.exists() and load.stats == {"parsed": 6}
    assert _rec_ids(again) == _rec_ids(first)
    for stamp in tmp_path.rglob("*.json"):  # stamps are JSON: a pickle there is just unreadable
        stamp.write_bytes(payload)
    assert _rec_ids(load(small_folder, "proteinnet", cache_dir=tmp_path)[0]) == _rec_ids(first)
    assert not marker.exists() and load.stats["hit"] == 0


@pytest.mark.parametrize("error", [OSError(errno.EIO, "Input/output error"), MemoryError()])
def test_transient_read_errors_are_reported_but_never_cached(small_folder, tmp_path, monkeypatch, error, load):
    real = proteinnet.read_text

    def flaky(path, min_length=40):
        if path.name == "rec3.txt":
            raise error
        return real(path, min_length)

    monkeypatch.setattr(proteinnet, "read_text", flaky)
    _, skips, _ = load(small_folder, "proteinnet", cache_dir=tmp_path)
    assert [(s.reason, "not cached" in s.detail) for s in skips] == [("read_error", True)]
    assert load.stats == {"parsed": 5, "uncached": 1}
    monkeypatch.setattr(proteinnet, "read_text", real)
    records, skips, _ = load(small_folder, "proteinnet", cache_dir=tmp_path)
    assert skips == [] and "REC3" in _rec_ids(records) and _parsed_and_reused(load.stats) == (1, 5)


def test_old_cache_versions_are_ignored(small_folder, tmp_path, monkeypatch, load):
    load(small_folder, "proteinnet", cache_dir=tmp_path)
    monkeypatch.setattr(cache, "CACHE_VERSION", cache.CACHE_VERSION + 1)
    load(small_folder, "proteinnet", cache_dir=tmp_path)
    assert load.stats == {"parsed": 6}


def test_non_utf8_file_names_work(tmp_path, load):
    d = tmp_path / "odd"
    d.mkdir()
    rng = np.random.default_rng(8)
    name = os.fsdecode(b"caf\xe9_\xff.txt")  # not UTF-8: a surrogate-escaped str on Linux
    with open(os.fsencode(d) + b"/caf\xe9_\xff.txt", "w") as fh:
        fh.write(synthetic_casp.text(synthetic_casp.record(rng, "ODD_TEXT")))
    fx.write_tfrecord(d / "ok.tfrecord", [synthetic_casp.sequence_example(synthetic_casp.record(rng, "ODD_TF"))])
    os.rename(d / "ok.tfrecord", os.fsencode(d) + b"/shard\xff.tfrecord")
    (d / os.fsdecode(b"bad\xfe.txt")).write_text("[ID]\nBROKEN\n")
    records, skips, _ = load(d, "proteinnet", cache_dir=tmp_path / "c")
    assert sorted(_rec_ids(records)) == ["ODD_TEXT", "ODD_TF"] and [s.reason for s in skips] == ["truncated_text"]
    for text in [r.source for r in records] + [f"{s.where} {s.detail}" for s in skips]:
        text.encode("utf-8")  # printable anywhere: logs, skipped.csv, MLflow
    assert any(r.source == "proteinnet:caf\\xe9_\\xff.txt" for r in records) and (d / name).exists()
    load(d, "proteinnet", cache_dir=tmp_path / "c")
    assert load.stats["parsed"] == 0
    pdbs = tmp_path / "pdbs"
    pdbs.mkdir()
    good = proteinnet.read_text(next(d.glob("caf*")))[0][0]
    for i, raw in enumerate((b"\xe9t\xe9.pdb", b"plain.pdb", b"n\xffm.pdb")):
        fx.write_pdb(good, pdbs / "tmp.pdb", entry=f"OD{i:02d}")
        os.rename(pdbs / "tmp.pdb", os.fsencode(pdbs) + b"/" + raw)
    records, skips, _ = load(pdbs, "structures", cache_dir=tmp_path / "c")
    assert sorted(_rec_ids(records)) == ["OD00_A", "OD01_A", "OD02_A"] and skips == []


# ---- bad inputs ----------------------------------------------------------------------------


def test_a_truncated_large_text_file_keeps_what_came_before(casp, tmp_path):
    d, _ = casp
    data = (d / "training_50").read_bytes()
    ids = _ids_in(d / "training_50")
    for cut in (len(data) * 7 // 10, data.index(b"[MASK]", len(data) // 3) + 10):
        f = tmp_path / "cut"
        f.write_bytes(data[:cut])
        records, skips = proteinnet.read_file(f)
        assert _rec_ids(records) == ids[: len(records)] and len(records) >= 60
        assert [(s.where, s.reason) for s in skips] == [(ids[len(records)], "truncated_text")]


def test_nan_in_a_pssm_is_a_skip_never_a_nan(tmp_path, load):
    rng = np.random.default_rng(2)
    good = synthetic_casp.record(rng, "GOOD_PSSM")
    rid, seq, evo, ter, mask = synthetic_casp.record(rng, "NAN_PSSM")
    evo = evo.copy()
    evo[4, 10] = np.nan
    big = evo.copy()
    big[2, 3] = 1e300  # finite in the file, infinite as float32
    (tmp_path / "t.txt").write_text(
        synthetic_casp.text(good)
        + synthetic_casp.text((rid, seq, evo, ter, mask))
        + synthetic_casp.text(("BIG_PSSM", seq, big, ter, mask))
    )
    records, skips = proteinnet.read_file(tmp_path / "t.txt")
    assert _rec_ids(records) == ["GOOD_PSSM"] and {(s.where, s.reason) for s in skips} == {
        ("NAN_PSSM", "bad_pssm"),
        ("BIG_PSSM", "bad_pssm"),
    }
    fx.write_tfrecord(tmp_path / "t.tfrecord", [synthetic_casp.sequence_example((rid, seq, evo, ter, mask))])
    assert [s.reason for s in proteinnet.read_file(tmp_path / "t.tfrecord")[1]] == ["bad_pssm"]
    records, skips, _ = load(tmp_path, "proteinnet", cache_dir=tmp_path / "c")
    assert all(np.isfinite(r.pssm).all() for r in records)


def test_tfrecord_features_of_the_wrong_dtype_are_skipped(tmp_path):
    rng = np.random.default_rng(4)
    from protstruct.data.records import ProteinRecord

    _, seq, _, ter, mask = synthetic_casp.record(rng, "X")
    rec = ProteinRecord("X", seq, (ter[:, 1::3].T / 100).astype(np.float32), mask)
    payloads = [
        fx.wrong_dtype_example(rec, feat, f"WRONG_{feat}")
        for feat in ("primary", "tertiary", "evolutionary", "mask", "id")
    ]
    fx.write_tfrecord(tmp_path / "w.tfrecord", [*payloads, fx.sequence_example(rec, rid="FINE")])
    records, skips = proteinnet.read_file(tmp_path / "w.tfrecord")
    assert _rec_ids(records) == ["FINE"]
    assert [(s.where, s.reason) for s in skips] == [
        ("WRONG_primary", "wrong_dtype"),
        ("WRONG_tertiary", "wrong_dtype"),
        ("WRONG_evolutionary", "wrong_dtype"),
        ("WRONG_mask", "wrong_dtype"),
        ("w.tfrecord#4", "wrong_dtype"),
    ]


def test_text_is_streamed_not_read_whole(casp, tmp_path, monkeypatch):
    d, _ = casp
    f = tmp_path / "big"
    shutil.copy(d / "training_50", f)
    monkeypatch.setattr(proteinnet, "BATCH_BYTES", 1 << 19)
    proteinnet.read_text(d / "testing")  # one-time imports (pandas' parser) are not the reader's memory
    tracemalloc.start()
    try:
        records, _ = proteinnet.read_text(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = sum(r.ca.nbytes + r.mask.nbytes + r.pssm.nbytes for r in records)
    size = f.stat().st_size
    assert len(records) == 200 and kept < size / 3
    assert peak < kept + size / 4, (peak, kept, size)  # the old reader held the whole file, twice


def test_other_separators_and_non_numbers_in_one_batch(tmp_path):
    rng = np.random.default_rng(6)
    recs = [synthetic_casp.record(rng, f"SEP{i}") for i in range(4)]
    plain = "".join(synthetic_casp.text(r) for r in recs)
    (tmp_path / "tabs.txt").write_text(plain)
    (tmp_path / "spaces.txt").write_text(plain.replace("\t", "  "))
    (tmp_path / "mixed.txt").write_text(plain.replace("\t", "\t\t", 50).replace("\t", " \r", 30))
    ref, _ = proteinnet.read_text(tmp_path / "tabs.txt")
    for name in ("spaces.txt", "mixed.txt"):
        got, skips = proteinnet.read_text(tmp_path / name)
        assert skips == [] and _rec_ids(got) == _rec_ids(ref)
        for a, b in zip(ref, got):
            np.testing.assert_array_equal(a.ca, b.ca)
            np.testing.assert_array_equal(a.pssm, b.pssm)
    texts = [synthetic_casp.text(r).split("\n") for r in recs]
    texts[1][texts[1].index("[EVOLUTIONARY]") + 3] += "\tabc"
    texts[2][texts[2].index("[TERTIARY]") + 1] = texts[2][texts[2].index("[TERTIARY]") + 1].replace("0", "O", 1)
    (tmp_path / "words.txt").write_text("".join("\n".join(t) for t in texts))
    got, skips = proteinnet.read_text(tmp_path / "words.txt")
    assert _rec_ids(got) == ["SEP0", "SEP3"]
    assert [(s.where, s.reason) for s in skips] == [("SEP1", "bad_pssm"), ("SEP2", "bad_coordinates")]


def test_a_run_logs_validation_results_per_identity_bin(casp, tmp_path):
    """A casp folder's validation set is stratified by identity (the NN# bins): the run logs every
    validation protein's errors with its bin, so a report can break results down by it."""
    d, _ = casp
    proc = run_cli(["debug=smoke", "data=proteinnet", f"data.path={d}", "data.thinning=30", "data.limit.val=null",
                    "tracking.experiment=bins", *store_overrides(tmp_path)], cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("bins").experiment_id])
    table = pd.read_csv(client.download_artifacts(run.info.run_id, "evaluation/val_per_protein.csv", str(tmp_path)))
    assert sorted(table["validation_identity"]) == sorted(2 * list(choices.VALIDATION_BINS))
    assert table["mse"].notna().all() and table["baseline_mse"].notna().all()
    test = pd.read_csv(client.download_artifacts(run.info.run_id, "evaluation/test_per_protein.csv", str(tmp_path)))
    assert set(test["category"]) == {"TBM", "FM"}
