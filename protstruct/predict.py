"""``python -m protstruct.predict``: a finished run's model on a new protein.

    python -m protstruct.predict --run-id RUN --structure 1abc.pdb [--chain A] --out pred/
    python -m protstruct.predict --run-id RUN --sequence MKT... --out pred/

Writes ``<name>.npy`` (the predicted L×L distance matrix, Å) and ``<name>.png`` (its heatmap,
with the true matrix beside it when the input has coordinates). The model sees fixed windows of
``data.crop_size`` residues along the diagonal (stride crop/2, overlaps averaged), exactly as in
training; pairs that never share a window (possible from crop/2 residues apart) are left NaN.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_run(run_id: str, uri: str):
    """(keras model, resolved config dict) of a FINISHED run."""
    import keras
    from omegaconf import OmegaConf

    import protstruct.models.decoders  # noqa: F401  (register protstruct's custom layers, loss
    import protstruct.models.model  # noqa: F401    and metric, so that saved models load)
    import protstruct.train.losses  # noqa: F401
    from protstruct.tracking import mlflow_store

    client = mlflow_store.client_for(uri)
    run = client.get_run(run_id)
    if run.info.status != "FINISHED":
        raise ValueError(f"--run-id {run_id}: run is {run.info.status}, expected FINISHED")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            model_path = client.download_artifacts(run_id, "model/model.keras", tmp)
        except Exception as exc:
            raise ValueError(f"--run-id {run_id}: no model/model.keras artifact (tracking.log_model was off?)") from exc
        cfg = OmegaConf.to_container(OmegaConf.load(client.download_artifacts(run_id, "config/resolved.yaml", tmp)))
        return keras.saving.load_model(model_path), cfg


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
        total[start:start + n, start:start + n] += pred[:n, :n]
        count[start:start + n, start:start + n] += 1
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
        raise ValueError(f"--structure {args.structure}: no protein chain{' ' + args.chain if args.chain else ''} "
                         f"({', '.join(s.reason for s in skips) or 'none found'})")
    return records[0], True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-id", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--structure", help="a PDB/mmCIF file (.gz too)")
    source.add_argument("--sequence", help="a one-letter amino-acid sequence")
    parser.add_argument("--chain", default=None, help="chain id in --structure (default: the first protein chain)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--out", type=Path, default=Path("predictions"))
    args = parser.parse_args(argv)
    from hydra.utils import instantiate

    from protstruct.report.__main__ import default_uri

    try:
        record, has_truth = _record(args)
        model, cfg = load_run(args.run_id, args.tracking_uri or default_uri())
        features = instantiate(cfg["features"])
        if "pssm" in features.needs:
            raise ValueError("this run's features need a PSSM, which a structure or sequence does not provide")
        pred = predict_matrix(model, record, int(cfg["data"]["crop_size"]), features)
    except (ValueError, FileNotFoundError) as exc:
        print(f"protstruct.predict: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    name = record.id
    np.save(args.out / f"{name}.npy", pred.astype(np.float32))
    _plot(pred, record.distance_matrix() if has_truth else None, record.pair_mask(), args.out / f"{name}.png", name)
    print(f"wrote {args.out / (name + '.npy')} ({record.length}×{record.length}) and {args.out / (name + '.png')}")
    return 0


def _plot(pred, true, mask, path: Path, title: str):
    from protstruct.report.figures import _plt

    plt = _plt()
    panels = [("predicted", pred)] + ([("true", np.where(mask, true, np.nan))] if true is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    vmax = float(np.nanmax([np.nanmax(p) for _, p in panels]))
    for ax, (label, m) in zip(axes[0], panels):
        im = ax.imshow(m, vmin=0, vmax=vmax, cmap="viridis_r")
        ax.set_title(f"{title}: {label}")
    fig.colorbar(im, ax=axes, shrink=0.8, label="Å")
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
