"""MLflow set-up and one run's logging, through an explicit ``MlflowClient``.

We never rely on MLflow's implicit defaults: the tracking URI and the experiment's artifact
location are always absolute (MLflow's default SQLite path is relative to the current directory,
and a stray ``./mlruns`` folder silently switches it to the file store).
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import time
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from protstruct.tracking.redact import redact, redact_tree, split_credentials

PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_LENGTH = 6000
BATCH = 100  # MLflow's log_batch limit per request


def client_for(uri: str) -> MlflowClient:
    """A client for ``uri``; the userinfo of an http(s) URI moves to MLflow's credential variables."""
    uri = split_credentials(str(uri))
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_absolute():
        raise ValueError(f"tracking.uri: {uri!r} is relative; use sqlite:////absolute/path.db")
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri)


EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on its runs


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """Experiment id by name, creating it (race-safe across parallel jobs) when missing; tagged
    as a model-training experiment so that MLflow's UI opens it on its runs."""
    for attempt in range(5):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            for key, value in EXPERIMENT_KIND.items():
                if exp.tags.get(key) != value:
                    client.set_experiment_tag(exp.experiment_id, key, value)
            return exp.experiment_id
        location = None
        if artifact_root:
            location = Path(artifact_root).resolve().joinpath(name).as_uri()
        try:
            return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except MlflowException:
            time.sleep(0.2 * (attempt + 1))  # another job created it first: read it back
    raise RuntimeError(f"tracking.experiment: could not create or read experiment {name!r}")


def flatten(tree, prefix: str = "") -> dict[str, str]:
    """Nested dict/list → {'a.b.0': 'value'} with string values MLflow accepts."""
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(tree, (list, tuple)) and tree and all(isinstance(v, (dict, list)) for v in tree):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = str(tree)[:MAX_PARAM_LENGTH]
    return out


@functools.lru_cache(maxsize=8)
def git_commit(root: Path) -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes), read once per process: the
    code a process runs is what it imported, even if the checkout moves on during a sweep."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def source_tags(entry_point: str, commit: str) -> dict[str, str]:
    """MLflow's own lineage tags, which its UI shows as *Source* and *User*."""
    import getpass

    tags = {"mlflow.source.name": entry_point, "mlflow.source.type": "LOCAL"}
    if commit not in ("", "unknown"):
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    with contextlib.suppress(KeyError, OSError):
        tags["mlflow.user"] = getpass.getuser()
    return tags


DIGEST_LENGTH = 32  # MLflow's digest column holds 36 characters (enforced by PostgreSQL)


def dataset_input(name: str, digest: str, source_type: str, uri: str, profile: dict, context: str) -> DatasetInput:
    """One split as an MLflow dataset input (the UI's *Dataset* column and filters)."""
    dataset = Dataset(
        name=name,
        digest=digest[:DIGEST_LENGTH],
        source_type=source_type,
        source=json.dumps({"uri": redact(uri)}),
        profile=json.dumps(profile),
    )
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])


def search_all(client: MlflowClient, experiment_ids: list[str], query: str = "", page_size: int = 1000) -> list:
    """Every run matching ``query``, page by page (a store may hold far more than one page)."""
    runs: list = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, query, max_results=page_size, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


class RunLogger:
    """Logging for one MLflow run (a job's child run, or a sweep's parent run)."""

    def __init__(self, client: MlflowClient, run_id: str, name: str = ""):
        self.client, self.run_id, self.name = client, run_id, name

    @classmethod
    def start(
        cls,
        client: MlflowClient,
        experiment_id: str,
        name: str,
        tags: dict | None = None,
        parent_run_id: str | None = None,
    ) -> RunLogger:
        tags = {k: redact(str(v)) for k, v in (tags or {}).items()}
        if parent_run_id:
            tags[PARENT_TAG] = parent_run_id
        run = client.create_run(experiment_id, run_name=name, tags=tags)
        return cls(client, run.info.run_id, name)

    def log_metrics(
        self,
        metrics: dict[str, float],
        step: int = 0,
        model_id: str | None = None,
        dataset: tuple[str, str] | None = None,
    ):
        """``model_id`` links the values to a logged model, ``dataset`` (name, digest) to a dataset input."""
        now = int(time.time() * 1000)
        name, digest = dataset if dataset else (None, None)
        items = [
            Metric(
                k,
                float(v),
                now,
                step,
                model_id=model_id,
                dataset_name=name,
                dataset_digest=digest[:DIGEST_LENGTH] if digest else None,
            )
            for k, v in metrics.items()
            if v is not None
        ]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + BATCH])

    def log_params(self, params: dict[str, str]):
        items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in redact_tree(params).items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + BATCH])

    def set_tags(self, tags: dict[str, str]):
        items = [RunTag(k, redact(str(v))) for k, v in tags.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + BATCH])

    def log_artifact(self, path: Path, artifact_path: str | None = None):
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None):
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_inputs(self, datasets: list[DatasetInput]):
        # MLflow's SQL store checks for a dataset row, then inserts it: two jobs logging the same
        # split at the same moment collide on its unique key; the retry finds the row
        for attempt in range(5):
            try:
                self.client.log_inputs(self.run_id, datasets=datasets)
                return
            except MlflowException as exc:
                if attempt == 4 or "unique" not in str(exc).lower():
                    raise
                time.sleep(0.2 * (attempt + 1))

    def log_text(self, text: str, artifact_file: str):
        self.client.log_text(self.run_id, redact(text), artifact_file)

    def experiment_id(self) -> str:
        return self.client.get_run(self.run_id).info.experiment_id

    def finish(self, status: str = "FINISHED"):
        self.client.set_terminated(self.run_id, status)
