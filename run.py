"""protstruct entry point: ``python run.py [-m] group=option key=value ...``"""

from protstruct import console

console.set_log_levels()  # before TensorFlow and MLflow are first imported

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import protstruct.config  # noqa: E402,F401  (registers the config resolvers)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from protstruct.train.job import run_job  # TensorFlow loads inside, after the job's thread settings

    return run_job(cfg)


if __name__ == "__main__":
    main()
