"""Resume: a job whose resolved config and data fingerprint already have a FINISHED run in the
experiment is skipped (unless ``rerun=true``); failed or killed ones run again."""
from __future__ import annotations

import hashlib
import json

KEY_TAG = "protstruct.job_key"
# what changes where or how a run is displayed/logged, not what it computes
NOT_IN_KEY = ("tracking", "rerun", "dry_run")
NOT_IN_TRAINER_KEY = ("verbose",)


def job_key(resolved_cfg: dict, data_fingerprint: str) -> str:
    cfg = {k: v for k, v in resolved_cfg.items() if k not in NOT_IN_KEY and k != "hydra"}
    if isinstance(cfg.get("trainer"), dict):
        cfg["trainer"] = {k: v for k, v in cfg["trainer"].items() if k not in NOT_IN_TRAINER_KEY}
    text = json.dumps(cfg, sort_keys=True, default=str) + data_fingerprint
    return hashlib.sha256(text.encode()).hexdigest()


def finished_run(client, experiment_id: str, key: str):
    """The newest FINISHED run with this job key, or None."""
    runs = client.search_runs([experiment_id], f"tags.`{KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None
