"""MLflow runs of the training and adaptation commands, opened one way.

By default a local store in the run's output folder: an SQLite file (`mlflow.db`) and an
artifact folder (`mlartifacts/`); MLflow's plain file store is deprecated. `uri` chooses
another tracking server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def start_mlflow_run(out_dir: Path, experiment: str, uri: str = "",
                     params: dict[str, Any] | None = None) -> Any:
    """Open an MLflow run named after `out_dir` in `experiment` (created with its artifacts
    under `out_dir/mlartifacts` when new), log `params` (values as text of at most 500
    characters) and return the `mlflow` module for logging."""
    import mlflow

    out_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri or f"sqlite:///{(out_dir / 'mlflow.db').resolve()}")
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment,
                                 artifact_location=(out_dir / "mlartifacts").resolve().as_uri())
    mlflow.set_experiment(experiment)
    mlflow.start_run(run_name=out_dir.name)
    if params:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
    return mlflow
