"""protstruct: Hydra-configured sweeps of Keras distance-matrix predictors, tracked in MLflow."""

__version__ = "0.1.0"
