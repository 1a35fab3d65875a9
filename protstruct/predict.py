"""``python -m protstruct.predict``: a finished run's model on a new protein.

    python -m protstruct.predict --model RUN_ID --structure 1abc.pdb [--chain A] --out pred/
    python -m protstruct.predict --model models:/NAME@champion --sequence MKT... --out pred/

Writes ``<name>.npy`` (the predicted L×L distance matrix, Å) and ``<name>.png`` (its heatmap,
with the true matrix beside it when the input has coordinates). The model sees fixed windows of
``data.crop_size`` residues along the diagonal (stride crop/2, overlaps averaged), exactly as in
training; pairs that never share a window (possible from crop/2 residues apart) are left NaN.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from protstruct import console

console.set_log_levels()


RESOLVED = "config/resolved.yaml"
MODEL = "model/model.keras"


def load_run(ref: str, uri: str):
    """(keras model, feature object, crop size) of a FINISHED run's model. ``ref`` is a run id,
    ``runs:/RUN_ID``, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``models:/MODEL_ID``.

    The run's artifacts are read as data only: the feature spec is looked up in protstruct's own
    feature table (``features_from_spec``), the ``.keras`` file inside the MLflow Model (or an older
    run's ``model/model.keras``) is loaded in Keras' safe mode with only protstruct's own classes
    (``load_saved_model``) — never through ``mlflow.pyfunc``; nothing in them is imported or
    instantiated by name. Anything unexpected is a ValueError naming the artifact."""
    from protstruct.tracking import liveness, mlflow_store

    client = mlflow_store.client_for(uri)
    liveness.reap_vanished(client)
    run_id, model_id = _finished_run(client, ref)
    with tempfile.TemporaryDirectory() as tmp:
        features, crop = _read_run_config(client, run_id, tmp)
        model, where_model = _read_model(client, run_id, model_id, tmp)
    expected = (None, crop, crop, features.channels)
    got = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else f"{len(model.inputs)} inputs"
    if got != expected:
        raise ValueError(
            f"{where_model}: the model's input is {got}, but {RESOLVED} (data.crop_size, features) implies {expected}"
        )
    return model, features, crop


def _finished_run(client, ref: str) -> tuple[str, str | None]:
    """(run id, model id or None) that ``ref`` names; the run must be FINISHED."""
    from protstruct.tracking import models

    try:
        run_id, model_id = models.resolve(client, ref)
        run = client.get_run(run_id)
    except ValueError:
        raise
    except Exception as exc:  # MlflowException: no such run or model, bad store, …
        raise ValueError(f"--model {ref}: {' '.join(str(exc).split())[:300]}") from None
    if run.info.status != "FINISHED":
        raise ValueError(f"--model {ref}: run {run_id} is {run.info.status}, expected FINISHED")
    return run_id, model_id


def _read_run_config(client, run_id: str, tmp: str):
    """(features, crop size) from the run's ``config/resolved.yaml``, read as plain data."""
    from omegaconf import OmegaConf

    from protstruct.data.features import features_from_spec

    where_cfg = f"run {run_id} artifact {RESOLVED}"
    try:
        cfg_path = client.download_artifacts(run_id, RESOLVED, tmp)
    except Exception as exc:
        raise ValueError(f"{where_cfg}: cannot be downloaded ({type(exc).__name__})") from None
    try:
        cfg = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=False)
    except Exception as exc:  # not YAML, not a mapping, …
        raise ValueError(f"{where_cfg}: not a readable config ({type(exc).__name__}: {exc})") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{where_cfg}: expected a mapping, got {type(cfg).__name__}")
    features = features_from_spec(cfg.get("features"), where_cfg)
    data = cfg.get("data")
    crop = data.get("crop_size") if isinstance(data, dict) else None
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 1:
        raise ValueError(f"{where_cfg}: data.crop_size must be a positive integer, got {crop!r}")
    return features, crop


def _read_model(client, run_id: str, model_id: str | None, tmp: str):
    """(keras model, where it came from) of the run's MLflow Model, or an older run's artifact."""
    from protstruct.models.saved import load_saved_model
    from protstruct.tracking import models

    where_model = (
        f"run {run_id} artifact {MODEL}" if model_id is None else f"model {model_id} artifact {models.KERAS_FILE}"
    )
    try:
        model_path, where_model = models.download_keras(client, run_id, model_id, tmp)
    except Exception:
        raise ValueError(f"{where_model}: missing (tracking.log_model was off?)") from None
    return load_saved_model(model_path, where_model), where_model


def output_name(record_id: str) -> str:
    """A file name stem from a record id (which comes from the input file's own HEADER / _entry.id):
    only [A-Za-z0-9._-], never starting with '.', never empty, at most 100 characters."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", record_id).lstrip(".")[:100]
    return name or "prediction"


def predict_matrix(model, record, crop: int, features) -> np.ndarray:
    """Average of the windows' predictions; NaN where no window covers a pair."""
    from protstruct.data import pipeline

    length = record.length
    starts = sorted({*range(0, max(length - crop, 0) + 1, max(crop // 2, 1)), max(length - crop, 0)})
    total = np.zeros((length, length))
    count = np.zeros((length, length))
    for start in starts:
        window = pipeline.window_features(record, start, crop, features)
        # predict_on_batch, not predict: no tf.data iterator (and its autotuner) per window
        pred = np.asarray(model.predict_on_batch(window[None]))[0, ..., 0]
        n = min(crop, length - start)
        total[start : start + n, start : start + n] += pred[:n, :n]
        count[start : start + n, start : start + n] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _record(args):
    from protstruct.data.records import STANDARD_AA, ProteinRecord
    from protstruct.data.structures import read_structure_file

    if args.sequence:
        seq = args.sequence.strip().upper()
        bad = sorted(set(seq) - set(STANDARD_AA + "X"))
        if bad:
            raise ValueError(f"--sequence: letters {bad} are not amino acids ({STANDARD_AA} or X)")
        return ProteinRecord("sequence", seq, np.zeros((len(seq), 3), np.float32), np.zeros(len(seq), bool)), False
    records, skips = read_structure_file(Path(args.structure), "predict", min_length=1)
    if args.chain:
        records = [r for r in records if r.id.rsplit("_", 1)[-1] == args.chain]
    if not records:
        raise ValueError(
            f"--structure {args.structure}: no protein chain{' ' + args.chain if args.chain else ''} "
            f"({', '.join(s.reason for s in skips) or 'none found'})"
        )
    return records[0], True


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        "--run-id",
        dest="model",
        required=True,
        help="a run id, runs:/RUN_ID, models:/NAME@ALIAS, models:/NAME/VERSION or models:/MODEL_ID",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--structure", help="a PDB/mmCIF file (.gz too)")
    source.add_argument("--sequence", help="a one-letter amino-acid sequence")
    parser.add_argument("--chain", default=None, help="chain id in --structure (default: the first protein chain)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: the project's SQLite store)")
    parser.add_argument("--out", type=Path, default=Path("predictions"))
    return parser.parse_args(argv)


def _output_paths(out: Path, name: str) -> tuple[Path, Path]:
    """``<name>.npy`` and ``<name>.png`` inside ``out`` (output_name allows no separator; checked
    anyway, before anything is written)."""
    paths = out / f"{name}.npy", out / f"{name}.png"
    for path in paths:
        if path.resolve().parent != out.resolve():
            raise ValueError(f"output {path} would not be inside --out {out}")
    return paths


def main(argv=None) -> int:
    args = _arguments(argv)
    console.import_tensorflow()
    from protstruct.tracking.default_store import default_uri

    try:
        record, has_truth = _record(args)
        model, features, crop = load_run(args.model, args.tracking_uri or default_uri())
        if "pssm" in features.needs:
            raise ValueError("this run's features need a PSSM, which a structure or sequence does not provide")
        pred = predict_matrix(model, record, crop, features)
        name = output_name(record.id)
        npy, png = _output_paths(args.out, name)
    except (ValueError, FileNotFoundError) as exc:
        print(f"protstruct.predict: {exc}", file=sys.stderr)
        return 2
    from protstruct.report.figures import distance_maps

    args.out.mkdir(parents=True, exist_ok=True)
    np.save(npy, pred.astype(np.float32))
    distance_maps(pred, record.distance_matrix() if has_truth else None, record.pair_mask(), png, name)
    print(f"wrote {npy} ({record.length}×{record.length}) and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
