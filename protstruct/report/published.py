"""What a study's own config adds to its report: the original report's published numbers, from
the ``report.original`` block of ``conf/study/<study>.yaml`` (only a study that has one prints them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from omegaconf import OmegaConf

from protstruct import config

STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Published:
    """Published numbers to print beside a study's own (``report.original`` of its config)."""

    title: str
    setting: str
    metric: str  # what the numbers are, with their unit
    same_as: str  # our metric with the same definition (its current name)
    crop_size: int
    models: list[dict]  # {name, config, value}, first the reference


def for_study(study: str | None) -> Published | None:
    """The study's published numbers; None for no study, an unknown one, or one without them."""
    if not study or not STUDY_NAME.fullmatch(study):
        return None
    path = config.project_root() / "conf" / "study" / f"{study}.yaml"
    if not path.is_file():
        return None
    study_cfg = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(study_cfg, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(study_cfg).__name__}")
    block = study_cfg.get("report", {}).get("original")
    return Published(**block) if block else None


def markdown(numbers: Published, metric_name: str, crop_size: int | None) -> list[str]:
    """Markdown blocks: the published numbers and, when our crop differs, why their scale does not
    compare. ``metric_name`` is the name the runs hold ``numbers.same_as`` under."""
    lines = [
        f"{numbers.title} ({numbers.setting}; same metric definition as {metric_name}, not the same data or crop):",
        "",
        f"| original model | {numbers.metric} |",
        "|---|---|",
    ]
    lines += [f"| {m['name']} ({m['config']}) | {m['value']:,.0f} |" for m in numbers.models]
    if len(numbers.models) > 1:
        first, last = numbers.models[0], numbers.models[-1]
        lines.append(f"| change {first['name']} → {last['name']} | {last['value'] / first['value'] - 1:+.1%} |")
    blocks = ["\n".join(lines)]
    if crop_size is not None and crop_size != numbers.crop_size:
        crop = numbers.crop_size
        blocks.append(
            f"Our {metric_name} is summed over a {crop_size}×{crop_size} window, so its scale is not "
            f"comparable with the original's {crop}×{crop} numbers; compare the relative changes, and use "
            "test/rmse (Å per pair) as the honest unit."
        )
    return blocks
