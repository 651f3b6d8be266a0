"""Training curves: the Trainer's log history, live in dvclive's layout (for `dvc plots`) and as a PNG."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

# Trainer log key -> the curve's name in plots/ and metrics
CURVES = {"loss": "loss", "eval_loss": "val_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}


def curve_points(history: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """{curve: [(step, value)]} from a Trainer log history (later entries for a step win)."""
    points: dict[str, dict[int, float]] = {name: {} for name in CURVES.values()}
    for entry in history:
        for key, name in CURVES.items():
            if key in entry and "step" in entry:
                points[name][int(entry["step"])] = float(entry[key])
    return {name: sorted(values.items()) for name, values in points.items() if values}


class LiveCurves:
    """Writes each logged value to dvclive as it comes, with the optimizer step as x."""

    def __init__(self, directory: Path) -> None:
        from dvclive import Live

        # Started afresh each run: a resumed run replays the history its checkpoint carries.
        self.live = Live(str(directory), save_dvc_exp=False, dvcyaml=None, report=None)
        self.directory = Path(directory)

    def log(self, entry: dict[str, Any]) -> None:
        if "step" not in entry:
            return
        logged = False
        for key, name in CURVES.items():
            if key in entry:
                self.live.step = int(entry["step"])
                self.live.log_metric(name, float(entry[key]), plot=True)
                logged = True
        if logged:
            self.live.make_summary()

    def close(self, history: list[dict[str, Any]], title: str, ylabel: str = "loss (assistant tokens)") -> None:
        self.live.end()
        plot_curves(curve_points(history), self.directory / "curves.png", title, ylabel)


class CurvesCallback(TrainerCallback):
    """Feeds a run's log to its curves (`curves` is None on every process but the main one) and logs each
    loss with the time since `started`; a resumed run first replays what it had logged before."""

    def __init__(self, curves: LiveCurves | None, main: bool, started: float) -> None:
        self.curves, self.main, self.started = curves, main, started

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for entry in state.log_history:  # what a resumed run had logged before its checkpoint
            if self.curves:
                self.curves.log(entry)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.curves:
            self.curves.log({**(logs or {}), "step": state.global_step})
        logs = logs or {}
        if self.main and ("loss" in logs or "eval_loss" in logs):
            figure = f"loss {logs['loss']:.4f}" if "loss" in logs else f"validation loss {logs['eval_loss']:.4f}"
            elapsed = time.perf_counter() - self.started
            log.info("step %d/%d: %s (%.0f s)", state.global_step, state.max_steps, figure, elapsed)


def plot_curves(
    points: dict[str, list[tuple[int, float]]], path: Path, title: str, ylabel: str = "loss (assistant tokens)"
) -> None:
    """Training and validation loss against the step (left), learning rate (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, style in (("loss", "-"), ("val_loss", "o-")):
        if name in points:
            steps, values = zip(*points[name], strict=True)
            ax_loss.plot(steps, values, style, label="validation" if name == "val_loss" else "training", markersize=3)
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel(ylabel)
    ax_loss.legend()
    ax_loss.set_title(title)
    if "learning_rate" in points:
        steps, values = zip(*points["learning_rate"], strict=True)
        ax_lr.plot(steps, values)
    ax_lr.set_xlabel("optimizer step")
    ax_lr.set_ylabel("learning rate")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
