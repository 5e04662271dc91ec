"""Cheap problems for benchmarks/search_efficiency.py: trainables whose objectives are formulas.

Each problem is a `surnn.trainable.Trainable` with the project's usual contract
(`train(config, report)` reports `epoch` and every objective after each epoch, for
``config["epochs"]`` epochs; its report noise is seeded by ``config["seed"]``, or by the
parameter values when there is none: the same config, the same reports; ``epoch_seconds``
makes each epoch sleep that long, for a real sweep; given ``config["checkpoint_dir"]`` it
checkpoints every epoch there and, resumed, goes on from the last one with the reports an
uninterrupted run would make), plus what the benchmark
needs to set up a search over it:

* `parameters`: the search space, as the spec's parameter objects;
* `objectives`: [(metric, "max"/"min", reference value)], the reference point of the hypervolume;
* `epochs`: the number of epochs of a full trial (the fidelity's maximum);
* `epoch_time(params)`: the simulated time one epoch takes (the order of asynchronous events);
* `front_params(rng)` (where the exact Pareto set is known): parameters of a point drawn at
  random on it, for benchmarks/front_bound.py.

Shipped (`--problem benchmarks.search_problems:NAME`):

* `zdt1`: informative low fidelity. ZDT1's front (f2 = g (1 - sqrt(f1 / g)), g over 3
  distance variables), both objectives minimised; f2 approaches its final value by the same
  additive offset for every trial (offset 1.0 exp(-epoch / (epochs / 6))), so the ranking at
  every epoch is the final ranking, up to the report noise (sd 0.01).
* `crossing`: low fidelity that misleads. The same front plus a `speed` parameter: a trial
  with speed s reports f2 + s + 2 (1 - s)(1 - epoch / epochs): a fast learner (s = 1) is at
  its final f2 + 1 from the first epoch, a slow one (s = 0) starts 2 above f2 and ends at f2.
  The ranking by s is reversed until half the epochs: every rung of pareto_asha below that
  promotes the trials that end dominated.
* `dtlz2`: three objectives (DTLZ2's spherical front, 2 position and 3 distance variables),
  each approaching its final value by the same factor (1 + 0.5 exp(-epoch / (epochs / 6)))
  for every trial: informative, like `zdt1`.
* `surrogate`: the SuRNN stand-in the benchmark used first (gate_threshold, sparsity_lambda,
  hidden_size, lr; val_accuracy max, update_rate min, front ~ 0.1 + 0.85 sqrt(update_rate)),
  learning faster with higher lr (a mild crossing: high-lr trials look better early).

A problem with a different full length is `Problem.with_epochs(n)` (the benchmark's --epochs).
"""
from __future__ import annotations

import copy
import hashlib
import math
import time
from pathlib import Path

import numpy as np

from orchestrator.spec import CategoricalParam, FloatParam
from surnn.trainable import FIDELITY, SettingError, Trainable

__all__ = ["Problem", "zdt1", "crossing", "dtlz2", "surrogate"]


def _unit(*names) -> dict:
    return {n: FloatParam(type="float", low=0.0, high=1.0) for n in names}


class Problem(Trainable):
    """A trainable whose objectives after `epoch` epochs are `values(params, epoch)` plus noise."""

    name = "problem"
    parameters: dict = {}
    objectives: list[tuple[str, str, float]] = []
    epochs = 27
    noise_sd = 0.01

    def values(self, params: dict, epoch: int) -> list[float]:
        raise NotImplementedError

    def _noise_seed(self, config: dict) -> int:
        """config["seed"], else one drawn from the parameter values: the same config, the same noise."""
        if "seed" in config:
            return int(config["seed"])
        key = ",".join(f"{config[n]!r}" for n in sorted(self.parameters))
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")

    def epoch_time(self, params: dict) -> float:
        return 1.0

    def front_params(self, rng: np.random.Generator) -> dict:
        """Parameters of a random point of the exact Pareto set (problems that know it)."""
        raise NotImplementedError(f"{self.name}: no exact Pareto set known")

    def with_epochs(self, epochs: int) -> "Problem":
        other = copy.copy(self)
        other.epochs = int(epochs)
        return other

    def metrics(self) -> list[str]:
        return [m for m, _, _ in self.objectives]

    def validate(self, config: dict) -> None:
        for name in self.parameters:
            if name not in config:
                raise SettingError(name, f"required by the {self.name} problem")

    def reports(self, config: dict) -> set[str]:
        return {FIDELITY, *self.metrics()}

    def train(self, config: dict, report) -> dict:
        epochs = int(config.get("epochs", self.epochs))
        if epochs != self.epochs:          # the curves are laid out over the full length
            return self.with_epochs(epochs).train(config, report)
        noise = np.random.default_rng(self._noise_seed(config))
        sds = np.broadcast_to(np.asarray(self.noise_sd, dtype=float), (len(self.objectives),))
        ckpt = Path(config["checkpoint_dir"]) if config.get("checkpoint_dir") else None
        start = int((ckpt / "epoch.txt").read_text()) if ckpt and (ckpt / "epoch.txt").exists() else 0
        noise.normal(0.0, 1.0, size=(start, len(self.objectives)))   # the draws of the epochs done before
        metrics: dict = {}
        for epoch in range(start + 1, epochs + 1):
            time.sleep(float(config.get("epoch_seconds", 0.0)))
            clean = self.values(config, epoch)
            metrics = {FIDELITY: epoch, **{m: float(v + sd * noise.normal(0.0, 1.0))
                                           for m, v, sd in zip(self.metrics(), clean, sds)}}
            if ckpt:                       # resumed (promotion-type rungs, a retry), it goes on from here
                ckpt.mkdir(parents=True, exist_ok=True)
                (ckpt / "epoch.txt").write_text(str(epoch))
                report(metrics, checkpoint_dir=str(ckpt))
            else:
                report(metrics)
        return {**metrics, "status": "completed"}


def _zdt1(x1: float, distance: list[float]) -> tuple[float, float]:
    g = 1.0 + 2.0 * float(np.mean(distance))          # 1 on the front, 3 at worst
    return x1, g * (1.0 - math.sqrt(x1 / g))


class ZDT1(Problem):
    name = "zdt1"
    parameters = _unit("x1", "x2", "x3", "x4")
    objectives = [("f1", "min", 1.1), ("f2", "min", 3.1)]

    def values(self, p: dict, epoch: int) -> list[float]:
        f1, f2 = _zdt1(p["x1"], [p["x2"], p["x3"], p["x4"]])
        return [f1, f2 + 1.0 * math.exp(-epoch / (self.epochs / 6))]

    def front_params(self, rng: np.random.Generator) -> dict:
        return {"x1": float(rng.uniform()), "x2": 0.0, "x3": 0.0, "x4": 0.0}


class Crossing(Problem):
    name = "crossing"
    parameters = {**_unit("x1", "x2", "x3", "x4"), "speed": FloatParam(type="float", low=0.0, high=1.0)}
    objectives = [("f1", "min", 1.1), ("f2", "min", 4.1)]

    def values(self, p: dict, epoch: int) -> list[float]:
        f1, f2 = _zdt1(p["x1"], [p["x2"], p["x3"], p["x4"]])
        s = float(p["speed"])
        return [f1, f2 + 1.0 * s + 2.0 * (1.0 - s) * (1.0 - epoch / self.epochs)]

    def front_params(self, rng: np.random.Generator) -> dict:
        return {"x1": float(rng.uniform()), "x2": 0.0, "x3": 0.0, "x4": 0.0, "speed": 0.0}


class DTLZ2(Problem):
    name = "dtlz2"
    parameters = _unit("x1", "x2", "x3", "x4", "x5")
    objectives = [("f1", "min", 2.0), ("f2", "min", 2.0), ("f3", "min", 2.0)]

    def values(self, p: dict, epoch: int) -> list[float]:
        a, b = p["x1"] * math.pi / 2, p["x2"] * math.pi / 2
        r = 1.0 + sum((p[k] - 0.5) ** 2 for k in ("x3", "x4", "x5"))
        scale = r * (1.0 + 0.5 * math.exp(-epoch / (self.epochs / 6)))
        return [scale * math.cos(a) * math.cos(b), scale * math.cos(a) * math.sin(b), scale * math.sin(a)]

    def front_params(self, rng: np.random.Generator) -> dict:
        return {"x1": float(rng.uniform()), "x2": float(rng.uniform()), "x3": 0.5, "x4": 0.5, "x5": 0.5}


class Surrogate(Problem):
    name = "surrogate"
    parameters = {
        "gate_threshold": FloatParam(type="float", low=-0.5, high=0.9),
        "sparsity_lambda": FloatParam(type="float", low=1.0e-4, high=1.0, log=True),
        "hidden_size": CategoricalParam(type="categorical", values=[64, 128, 256]),
        "lr": FloatParam(type="float", low=3.0e-4, high=1.0e-2, log=True),
    }
    objectives = [("val_accuracy", "max", 0.0), ("update_rate", "min", 1.0)]
    noise_sd = (0.01, 0.005)
    _EPOCH_TIME = {64: 0.7, 128: 1.0, 256: 1.6}

    def epoch_time(self, p: dict) -> float:
        return self._EPOCH_TIME[int(p["hidden_size"])]

    def values(self, p: dict, epoch: int) -> list[float]:
        g, lam, h, lr = p["gate_threshold"], p["sparsity_lambda"], int(p["hidden_size"]), p["lr"]
        rate = 1.0 / (1.0 + math.exp(4.0 * (g - 0.2) + 1.2 * (math.log10(lam) + 2.0)))
        capacity = 0.88 if h <= 64 else 0.96 if h <= 128 else 1.0
        lr_quality = min(max(1.0 - 0.25 * ((math.log10(lr) - math.log10(2e-3)) / 0.8) ** 2, 0.5), 1.0)
        acc = 0.1 + 0.85 * math.sqrt(rate) * capacity * lr_quality * (1.0 - 0.08 * (math.log10(lam) + 4.0) / 4.0)
        speed = 0.25 * (lr / 1e-3) ** 0.8 * (128.0 / h) ** 0.3 * 27.0 / self.epochs
        return [0.1 + (acc - 0.1) * (1.0 - math.exp(-speed * epoch)), rate * (1.0 + 0.3 * math.exp(-epoch / 3.0))]


zdt1, crossing, dtlz2, surrogate = ZDT1(), Crossing(), DTLZ2(), Surrogate()
