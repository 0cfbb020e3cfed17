"""The live view of `edgemem sweep`: trials done / running / stopped, the best score so far, the running trials.

A Ray Tune callback (it runs in the driver, where Tune's loop calls it); on a terminal a rich Live panel redrawn
as results arrive, elsewhere (CI, a log file) one line per finished trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


class ProgressView(Callback):  # type: ignore[misc]
    """Tune keeps the callbacks of the run it started (pickled with the experiment): a resumed run calls the old
    one's hooks, which forward to the view of this invocation, `ProgressView.active`."""

    active: ProgressView | None = None

    def __init__(self, trials: int, epochs: int, live: bool = True, say: Callable[[str], None] | None = None) -> None:
        self.trials, self.epochs, self.say = trials, epochs, say or (lambda m: None)
        self.console = Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=2, transient=False) \
            if live and self.console.is_terminal else None
        self.last: dict[str, dict[str, Any]] = {}  # trial id -> last result
        self.state: dict[str, str] = {}  # trial id -> running / completed / stopped / error
        self.params: dict[str, dict[str, Any]] = {}
        self.started = time.perf_counter()

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its run config, callbacks included: the console, the live panel and `say` stay behind."""
        return {k: v for k, v in self.__dict__.items() if k not in ("console", "live", "say")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console, self.live, self.say = Console(stderr=True), None, lambda m: None

    def __enter__(self) -> ProgressView:
        ProgressView.active = self
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        ProgressView.active = None
        if self.live is not None:
            self.live.update(self._render())
            self.live.stop()

    # ------------------------------------------------------------------ Tune's hooks (driver process)
    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if ProgressView.active not in (None, self):
            return ProgressView.active.on_trial_start(iteration, trials, trial, **info)
        self.state[trial.trial_id] = "running"
        self.params[trial.trial_id] = dict(trial.config)
        self.last.pop(trial.trial_id, None)  # a trial started again (resumed) reports from its first epoch
        self._refresh()

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if ProgressView.active not in (None, self):
            return ProgressView.active.on_trial_result(iteration, trials, trial, result, **info)
        self.last[trial.trial_id] = result
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if ProgressView.active not in (None, self):
            return ProgressView.active.on_trial_complete(iteration, trials, trial, **info)
        r = self.last.get(trial.trial_id, {})
        self.state[trial.trial_id] = "completed" if r.get("final") else "stopped"
        what = (f"CV test {r['cv_test_mean']:.3f}" if r.get("final") else
                f"stopped by ASHA after {r.get('epochs', 0)} epochs")
        if self.live is None:
            self.say(f"trial {trial.trial_id}: score {r.get('score', float('nan')):.4f}, {what}; "
                     f"{self._counts()}")
        self._refresh()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if ProgressView.active not in (None, self):
            return ProgressView.active.on_trial_error(iteration, trials, trial, **info)
        self.state[trial.trial_id] = "error"
        if self.live is None:
            self.say(f"trial {trial.trial_id}: failed ({trial.path})")
        self._refresh()

    # ------------------------------------------------------------------ drawing
    def _best(self) -> tuple[str, float] | None:
        done = [(t, self.last[t]["score"]) for t, s in self.state.items() if s == "completed" and t in self.last]
        return max(done, key=lambda x: x[1]) if done else None

    def _counts(self) -> str:
        n = {k: sum(s == k for s in self.state.values()) for k in ("completed", "stopped", "running", "error")}
        best = self._best()
        text = (f"{n['completed']} completed, {n['stopped']} stopped early, {n['running']} running, "
                f"{n['error']} failed of {self.trials}")
        return text + (f"; best {best[1]:.4f} ({best[0]})" if best else "")

    def _render(self) -> Group:
        table = Table("running trial", "epoch", "score", "params", box=None, pad_edge=False)
        for t, s in self.state.items():
            if s == "running":
                r = self.last.get(t, {})
                score = f"{r['score']:.4f}" if "score" in r else "–"
                params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in self.params.get(t, {}).items())
                table.add_row(t, f"{r.get('epochs', 0)}/{self.epochs}", score, params[:80])
        elapsed = time.perf_counter() - self.started
        return Group(Text(f"sweep: {self._counts()}  [{elapsed:.0f} s]"), table)

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._render())
