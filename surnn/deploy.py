"""Loading a trained model for deployment: `surnn.load(path)` from a trainer checkpoint.

    import mlflow, surnn
    path = mlflow.artifacts.download_artifacts(run_id=PARENT_RUN_ID, artifact_path=f"front_weights/{TRIAL_ID}")
    engine = surnn.load(path).sparse()        # the front member, computing only its open neurons

A sweep logs each Pareto-front member's last checkpoint folder as ``front_weights/<trial>`` on
its parent MLflow run; `load` takes that folder (or any trainer ``checkpoint_dir``), or the
``checkpoint.pt`` file itself. surnn itself never talks to MLflow.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from surnn.data import TaskInfo, task_info
from surnn.model import TaskModel, build_model
from surnn.train import CHECKPOINT_FILE
from surnn.train_config import TrainConfig


def load(path: str | Path, *, trusted: bool = False) -> TaskModel:
    """The trained model of a checkpoint, on the CPU in eval mode (`.sparse()` gives its engine).

    Args:
        path: a folder holding ``checkpoint.pt`` (a run's checkpoint_dir, or a downloaded
            ``front_weights/<trial>`` artifact folder) or the file itself.
        trusted: allow a checkpoint holding Python objects beyond tensors and plain data
            (written before the trainer stored plain data only); unpickling those can run code.

    Returns:
        The model (`SequenceClassifier`, `LanguageModel` or `DualEncoder`) with the run's weights.

    Raises:
        ValueError: one line naming the path, when it holds no readable checkpoint.
    """
    file = Path(path)
    if file.is_dir():
        file = file / CHECKPOINT_FILE
    if not file.is_file():
        raise ValueError(f"{path}: no trainer checkpoint there (expected a folder holding {CHECKPOINT_FILE}, or the file)")
    if not zipfile.is_zipfile(file):      # torch.save's format is a zip archive
        raise ValueError(f"{file}: not a readable checkpoint (not a file written by torch.save)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError:
        raise ValueError(f"{file}: holds objects beyond tensors and plain data (an older checkpoint?); "
                         f"pass trusted=True if you trust where it came from") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{file}: not a readable checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{file}: not a surnn trainer checkpoint (expected 'model' and 'config' entries)")
    cfg = TrainConfig.from_dict(state["config"])
    info = TaskInfo(**state["task_info"]) if state.get("task_info") else task_info(cfg.task, cfg.task_options)
    model = build_model(info, cfg.hidden_size, cfg.num_layers, dropout=cfg.dropout,
                        layer_settings=cfg.layer_settings())
    model.load_state_dict(state["model"])
    return model.eval()
