"""Trained models as MLflow Models (MLflow 3 logged models, Keras flavour), through an explicit
client, and their resolution back to the one ``.keras`` file protstruct reads.

A job's model is stored once, as a logged model whose source run is the job's run: ``MLmodel``
with a signature (features crop×crop×C → distances crop×crop×1, float32) and an input example,
and the Keras file at ``data/model.keras``. No ``code_paths``, no pickled ``custom_objects``, no
``PythonModel``. Users who trust a store may load it with ``mlflow.pyfunc.load_model`` or serve it
with ``mlflow models serve``; protstruct itself only ever reads the ``.keras`` file.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
from mlflow.entities import LoggedModelOutput

KERAS_FILE = "data/model.keras"
LEGACY_ARTIFACT = "model/model.keras"  # runs from before logged models
MODEL_NAME = "model"
MODEL_PARAMS = ("data.crop_size", "seed", "dropout.rate", "optimizer.learning_rate")  # shown with the model
EXAMPLE_LIMIT = 200_000  # values; a larger input example would bloat every model's folder


def _requirements() -> list[str]:
    """What the model needs to load (explicit: MLflow's inference would load the model again)."""
    out = []
    for pkg in ("tensorflow", "keras", "protstruct"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out.append(f"{pkg}=={metadata.version(pkg)}" if pkg != "protstruct" else pkg)
    return out


def log_keras_model(client, experiment_id: str, run_id: str, model, example: np.ndarray) -> str:
    """Save ``model`` as an MLflow Model linked to ``run_id``; returns its model id."""
    import keras
    import mlflow.keras
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    in_shape, out_shape = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *in_shape), "features")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *out_shape), "distances")]),
    )
    input_example = example.astype(np.float32)[None] if example.size <= EXAMPLE_LIMIT else None
    run = client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("mlflow.source.") or k == "mlflow.user"}
    params = {k: v for k, v in run.data.params.items() if k.startswith("choice.") or k in MODEL_PARAMS}
    logged = client.create_logged_model(
        experiment_id, name=MODEL_NAME, source_run_id=run_id, tags=tags, params=params, model_type="keras"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model"
            path.mkdir()  # mlflow.keras.save_model writes the input example before creating it
            # the same layers without the training set-up: loading needs no loss or metric class
            inference = keras.Model(model.inputs, model.outputs, name=model.name)
            mlflow.keras.save_model(
                inference, str(path), signature=signature, input_example=input_example, pip_requirements=_requirements()
            )
            client.log_model_artifacts(logged.model_id, str(path))
        client.finalize_logged_model(logged.model_id, "READY")
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged.model_id


def run_model_id(client, run) -> str | None:
    """The logged model a run produced (its newest), or None."""
    outputs = getattr(run, "outputs", None)
    ids = [o.model_id for o in (outputs.model_outputs if outputs else [])]
    if ids:
        return ids[-1]
    found = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'", max_results=10
    )
    return found[0].model_id if found else None


MODEL_ID_TAG = "protstruct.model_id"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))?$")
_RUNS_URI = re.compile(r"^runs:/(?P<run>[0-9a-zA-Z]+)(?:/.*)?$")


def resolve(client, ref: str) -> tuple[str, str | None]:
    """``ref`` (a run id, ``runs:/RUN[/model]``, ``models:/NAME@alias``, ``models:/NAME/VERSION``
    or ``models:/m-…``) → (source run id, logged model id or None for a legacy run)."""
    ref = ref.strip()
    if (m := _RUNS_URI.match(ref)) or re.fullmatch(r"[0-9a-f]{32}", ref):
        run = client.get_run(m.group("run") if m else ref)
        return run.info.run_id, run_model_id(client, run)
    m = _MODELS_URI.match(ref)
    if not m:
        raise ValueError(
            f"{ref!r}: expected a run id, runs:/RUN_ID, models:/NAME@ALIAS, models:/NAME/VERSION or models:/MODEL_ID"
        )
    name, alias, version = m.group("name", "alias", "version")
    if alias is None and version is None:  # models:/m-<id>: a logged model by id
        logged = client.get_logged_model(name)
        return logged.source_run_id, logged.model_id
    mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    model_id = mv.model_id or mv.tags.get(MODEL_ID_TAG)  # SQL registries do not keep model_id
    if model_id:
        return client.get_logged_model(model_id).source_run_id, model_id
    return mv.run_id, None


def download_keras(client, run_id: str, model_id: str | None, dst: str) -> tuple[str, str]:
    """(local path of the ``.keras`` file, what it is called for error messages)."""
    if model_id is None:
        return client.download_artifacts(run_id, LEGACY_ARTIFACT, dst), f"run {run_id} artifact {LEGACY_ARTIFACT}"
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    location = client.get_logged_model(model_id).artifact_location
    repo = get_artifact_repository(location, tracking_uri=client.tracking_uri)
    return repo.download_artifacts(KERAS_FILE, dst), f"model {model_id} artifact {KERAS_FILE}"


CHAMPION = "champion"


def register(client, name: str, run_id: str, model_id: str, tags: dict[str, str], description: str) -> str:
    """A new version of registered model ``name`` from a logged model, with alias ``champion``;
    returns the version."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
            raise
    logged = client.get_logged_model(model_id)
    version = client.create_model_version(
        name,
        source=logged.artifact_location,
        run_id=run_id,
        tags={**tags, MODEL_ID_TAG: model_id},
        description=description,
        model_id=model_id,
    )
    client.set_registered_model_alias(name, CHAMPION, version.version)
    return str(version.version)
