"""One job's computation: a checked plan and its data in, an :class:`Outcome` of arrays out.

Train the seed group once (or take its trajectory from ``fetch``, the cache), score every checkpoint
alone (*single*), every weight average of the n latest checkpoints (*average*), every output ensemble
of them (*ensemble*: their predicted probabilities averaged with the same weights) and the
in-training averages (*ema_D*, *swa*), on the validation and the test rows, for every seed; then
summarise over seeds, selecting on validation alone. No MLflow, no files::

    plan = plan_from(compose(["seeds=5", "epochs=50"]))
    outcome = compute_outcome(plan, plan.load_data())
    outcome.scores["test_average_acc"].shape        # (5, 10): seed x n
    outcome.summary["selected_n"], outcome.summary["selected_test_acc"]

Score keys read ``{split}_{method}_{metric}``: split ``val`` or ``test``; method ``single``,
``average``, ``ensemble`` (each ``(S, K)``, one column per n) or an in-training average (``(S,)``);
metric ``acc``, ``loss`` or ``ece`` (expected calibration error, ``polyexp.core.calibration``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import keras
import numpy as np

from polyexp.core.averaging import Validation, average, weight_matrix
from polyexp.core.calibration import expected_calibration_error
from polyexp.core.data import Dataset
from polyexp.core.evaluation import Scorer, accuracy_and_loss, ensemble_probabilities
from polyexp.core.models import build_model
from polyexp.core.statistics import Estimate, mean_ci, select
from polyexp.core.training import train
from polyexp.core.trajectory import HISTORY_KEYS, Trajectory
from polyexp.core.trajectory_sources import read_checkpoints

if TYPE_CHECKING:  # not imported at run time: keeps polyexp.core.settings out of the code identity
    from polyexp.core.registry import BoundPlugin
    from polyexp.core.settings import Plan

log = logging.getLogger(__name__)

SCORED_SPLITS = ("val", "test")

# fetch(train) -> (trajectory, reused): the trajectory cache, or training every time.
Fetch = Callable[[Callable[[], Trajectory]], tuple[Trajectory, bool]]


@dataclass
class Outcome:
    """What a job computed, before any of it is written or logged."""

    trajectory: Trajectory
    weights: np.ndarray  # (S, K, K): row n-1 holds the normalised weights of the n latest members
    scores: dict[str, np.ndarray]  # see the module docstring
    per_n: dict[str, Estimate]  # mean and interval over seeds of every (S, K) score and gain, per n
    summary: dict[str, float]  # selection on validation and the headline numbers, with intervals
    averaged_model: keras.Model  # the first seed's average of all K members, BatchNorm recomputed
    reused: bool  # the trajectory came from the cache
    train_seconds: float | None  # None when it came from the cache

    @property
    def seeds(self) -> list[int]:
        return self.trajectory.seeds.tolist()


def compute_outcome(
    plan: Plan,
    data: Dataset,
    fetch: Fetch | None = None,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Train (or fetch) the trajectory of ``plan``'s seed group and score it; see the module docstring.

    ``prepare_training`` then ``outcome_of``, with the trajectory between them trained, or
    taken from ``fetch``, which is given the :class:`Training` to run when it has none.
    """
    training = prepare_training(plan, data, on_progress=on_progress)
    if plan.checkpoint_files is not None:  # your own checkpoints: nothing to train or cache
        return outcome_of(training, None)
    trajectory, reused = fetch(training) if fetch is not None else (training(), False)
    return outcome_of(training, trajectory, reused=reused)


class Training:
    """Training a plan's seed group on its data, when called; ``seconds``: how long it took (None: not yet).

    A trajectory cache calls it when it has no entry (``TrajectoryCache.fetch``).
    """

    def __init__(self, plan: Plan, data: Dataset, on_progress: Callable[[int], None] | None = None) -> None:
        self.plan, self.data, self.on_progress = plan, data, on_progress
        self.seconds: float | None = None

    def __call__(self) -> Trajectory:
        plan, settings = self.plan, self.plan.settings
        started = time.perf_counter()
        trajectory = train(
            functools.partial(build_model, plan.model, self.data), plan.optimizer, self.data,
            seeds=settings.seed_list, epochs=settings.epochs, batch_size=settings.batch_size, window=plan.window,
            schedule=plan.plugins["schedule"], ema_decays=settings.ema_decays or (), swa_start=settings.swa_start,
            curve_every=settings.curve_every, on_progress=self.on_progress,
        )
        self.seconds = time.perf_counter() - started
        return trajectory


def prepare_training(plan: Plan, data: Dataset, *, on_progress: Callable[[int], None] | None = None) -> Training:
    """What comes before any training: a plain averaging checked, Keras's session cleared; the training to run."""
    if not plan.averaging.wants:  # a plain averaging's mistakes show before any training
        weight_matrix(plan.averaging, len(plan.window))
    # The jobs of a basic-launcher sweep share this process; Python's own collector frees the rest
    # (a full collection after the imports costs about 0.3 s).
    keras.backend.clear_session(free_memory=False)
    return Training(plan, data, on_progress)


def outcome_of(
    training: Training, trajectory: Trajectory | None, *, reused: bool = False,
    on_progress: Callable[[float, float], None] | None = None,
) -> Outcome:
    """Score ``trajectory`` (trained by ``training``, or ``reused`` from a cache; None: the plan's own
    checkpoint files, read here) and summarise it over seeds.

    ``on_progress(done, total)`` follows the scoring in weight sets (one set through one split, or
    through one BatchNorm pass, counts one).
    """
    plan, data, settings = training.plan, training.data, training.plan.settings
    if trajectory is None:
        trajectory, model = read_checkpoints(plan.checkpoint_files, plan.model, data)
        scorer = Scorer(model, data.x_train, recompute_bn=settings.recompute_bn,
                        batch_size=settings.scoring.batch_size)
    else:
        scorer = scorer_for(plan, data)
    scorer.done, scorer.on_progress = 0.0, on_progress
    scorer.total = scoring_work(scorer, trajectory, plan.averaging, curves=not trajectory.history)
    weights, scores, averaged = score_trajectory(scorer, trajectory, plan.averaging, data)
    if not trajectory.history:  # checkpoint files: their learning curves are their own scores
        trajectory.history = file_curves(scorer, trajectory, scores, data)
    per_n, summary = summarise(scores)
    k = len(trajectory.epochs)
    return Outcome(
        trajectory=trajectory, weights=weights, scores=scores, per_n=per_n, summary=summary,
        averaged_model=scorer.holding([w[k - 1] for w in averaged]),  # the first seed's average of all K
        reused=reused, train_seconds=training.seconds,
    )


def scoring_work(scorer: Scorer, trajectory: Trajectory, averaging: BoundPlugin, *, curves: bool) -> float:
    """The weight sets :func:`score_trajectory` (and, with ``curves``, :func:`file_curves`) pass through
    a split or a BatchNorm pass; a selecting averaging's search adds what it tries."""
    s, k = trajectory.checkpoints[0].shape[:2]
    passes = len(scorer.bn_layers)
    work = s * k * (2 + passes + 2) + s * len(trajectory.averages) * (passes + 2)
    if averaging.wants:
        work += s * k * (passes + 1)
    return float(work + (s * k if curves else 0))


_SCORERS: dict[str, Scorer] = {}
_KEPT_SCORERS = 4


def scorer_for(plan: Plan, data: Dataset) -> Scorer:
    """The process's scorer of ``plan``'s model on ``data``'s training rows, built and traced once.

    The jobs of a sweep in one process (Hydra's basic launcher, a worker of a parallel one) that
    share the model and the training rows share it; only the last few are kept.
    """
    x_train = np.ascontiguousarray(data.x_train)
    scoring = plan.settings.scoring
    key = hashlib.sha256(repr((
        plan.model.name, sorted(plan.model.config.items()), data.num_features, data.num_classes,
        data.input_shape, plan.settings.recompute_bn, scoring.batch_size, x_train.dtype.str, x_train.shape,
    )).encode() + x_train.tobytes()).hexdigest()
    if key not in _SCORERS:
        while len(_SCORERS) >= _KEPT_SCORERS:
            del _SCORERS[next(iter(_SCORERS))]
        _SCORERS[key] = Scorer(build_model(plan.model, data), x_train,
                               recompute_bn=plan.settings.recompute_bn, batch_size=scoring.batch_size)
    return _SCORERS[key]


def score_trajectory(
    scorer: Scorer, trajectory: Trajectory, averaging: BoundPlugin, data: Dataset
) -> tuple[np.ndarray, dict[str, np.ndarray], list[np.ndarray]]:
    """The weights of every n for every seed, every score (see the module docstring), and the averaged
    models' weight sets (per weight ``(S*K, *shape)``, BatchNorm statistics recomputed)."""
    s, k = trajectory.checkpoints[0].shape[:2]
    members = [w.reshape(s * k, *w.shape[2:]) for w in trajectory.checkpoints]
    probabilities, scores = {}, {}
    for split in SCORED_SPLITS:
        x, y = data.split(split)
        probabilities[split] = scorer.probabilities(members, x).reshape(s, k, len(x), -1)
        scores |= _scores(f"{split}_single", y, probabilities[split])

    weights = seed_weights(scorer, trajectory, averaging, data, scores["val_single_acc"])
    averaged = scorer.recomputed([w.reshape(s * k, *w.shape[2:]) for w in average_sets(trajectory, weights)])
    in_training = {name: scorer.recomputed(sets) for name, sets in trajectory.averages.items()}
    for split in SCORED_SPLITS:
        x, y = data.split(split)
        scores |= _scores(f"{split}_average", y, scorer.probabilities(averaged, x).reshape(s, k, len(x), -1))
        scores |= _scores(f"{split}_ensemble", y, ensemble_probabilities(probabilities[split], weights))
        for name, sets in in_training.items():
            scores |= _scores(f"{split}_{name}", y, scorer.probabilities(sets, x))
    return weights, scores, averaged


def file_curves(
    scorer: Scorer, trajectory: Trajectory, scores: dict[str, np.ndarray], data: Dataset
) -> dict[str, np.ndarray]:
    """The learning curves of checkpoint files, oldest first: each file scored alone as it was saved,
    on the training rows here, and on validation and test its single scores (no split scored twice)."""
    s, k = trajectory.checkpoints[0].shape[:2]
    members = [w.reshape(s * k, *w.shape[2:]) for w in trajectory.checkpoints]
    accuracy, loss = scorer(members, data.x_train, data.y_train)
    curves = {"train_acc": accuracy.reshape(s, k), "train_loss": loss.reshape(s, k)}
    curves |= {f"{split}_{metric}": scores[f"{split}_single_{metric}"]
               for split in SCORED_SPLITS for metric in ("acc", "loss")}
    return {key: curves[key][:, ::-1] for key in HISTORY_KEYS}  # the curves run forward in time


def _scores(prefix: str, labels: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """``{prefix}_acc``, ``_loss`` and ``_ece`` of ``(..., rows, classes)`` probabilities."""
    acc, loss = accuracy_and_loss(labels, probabilities)
    return {f"{prefix}_acc": acc, f"{prefix}_loss": loss,
            f"{prefix}_ece": expected_calibration_error(labels, probabilities)}


def seed_weights(
    scorer: Scorer, trajectory: Trajectory, averaging: BoundPlugin, data: Dataset, val_member_acc: np.ndarray
) -> np.ndarray:
    """``(S, K, K)``: each seed's weight matrix. A selecting averaging sees that seed's validation rows only.

    It ranks the members as it scores their averages: with BatchNorm statistics recomputed, each
    member alone is scored with its statistics recomputed too (``val_member_acc``, their stored
    statistics, is used only where nothing is recomputed), so the soup of one member scores what that
    member ranked with.
    """
    s, k = trajectory.checkpoints[0].shape[:2]
    if not averaging.wants:
        return np.broadcast_to(weight_matrix(averaging, k), (s, k, k)).copy()
    if scorer.recomputes:
        members = [w.reshape(s * k, *w.shape[2:]) for w in trajectory.checkpoints]
        val_member_acc = scorer(scorer.recomputed(members), data.x_val, data.y_val)[0].reshape(s, k)
    matrices = []
    for seed in range(s):
        checkpoints = [w[seed] for w in trajectory.checkpoints]
        # A search for n+1 repeats most of the one for n; a member alone scores what it ranked with.
        scored = {(0.0,) * i + (1.0,): float(val_member_acc[seed, i]) for i in range(k)}

        def score(member_weights: list[float], checkpoints: list = checkpoints, scored: dict = scored) -> float:
            normalised = np.asarray(member_weights, dtype=np.float64) / np.sum(member_weights)
            key = tuple(np.trim_zeros(normalised, "b").tolist())  # the same average for every n
            if key not in scored:
                averaged = average(checkpoints, normalised)
                accuracy, _ = scorer(scorer.recomputed([w[None] for w in averaged]), data.x_val, data.y_val)
                scored[key] = float(accuracy[0])
            return scored[key]

        matrices.append(weight_matrix(averaging, k, validation=Validation(val_member_acc[seed], score)))
    return np.stack(matrices)


def average_sets(trajectory: Trajectory, weights: np.ndarray) -> list[np.ndarray]:
    """Per weight, ``(S, K, *shape)``: each seed's average of its n latest members, for n = 1..K."""
    return [np.einsum("snk,sk...->sn...", weights, w).astype(w.dtype) for w in trajectory.checkpoints]


def summarise(scores: dict[str, np.ndarray]) -> tuple[dict[str, Estimate], dict[str, float]]:
    """Means and intervals over seeds; the selections, made on validation, and their test numbers.

    - per n: every ``(S, K)`` score, and ``{split}_gain_vs_last``: the average of the n latest minus
      the last checkpoint, paired over seeds. The last checkpoint is the average of n = 1, scored as
      the averages are (with BatchNorm, its statistics recomputed too), so the gain is what averaging
      adds and not what recomputing does;
    - ``selected_n``: the n whose average scores best on validation (mean over seeds), with its
      ``selected_val_acc``, ``selected_test_acc`` and ``selected_gain_vs_last`` (test);
      ``ensemble_selected_*`` likewise for the output ensembles;
    - ``last_{split}_acc``: the last checkpoint alone; each in-training average's ``{split}_{name}_acc``.

    Every value comes with ``_ci_low`` / ``_ci_high`` (NaN with one seed).
    """
    per_n = {key: mean_ci(values) for key, values in scores.items() if values.ndim == 2}
    for split in SCORED_SPLITS:
        accuracy = scores[f"{split}_average_acc"]
        per_n[f"{split}_gain_vs_last"] = mean_ci(accuracy - accuracy[:, :1])
    summary: dict[str, float] = {}

    def put(name: str, estimate: Estimate) -> None:
        summary[name] = float(estimate.mean)
        summary[f"{name}_ci_low"], summary[f"{name}_ci_high"] = float(estimate.low), float(estimate.high)

    for prefix, method in (("", "average"), ("ensemble_", "ensemble")):
        n = select(per_n[f"val_{method}_acc"].mean)
        summary[f"{prefix}selected_n"] = n + 1
        put(f"{prefix}selected_val_acc", per_n[f"val_{method}_acc"][n])
        put(f"{prefix}selected_test_acc", per_n[f"test_{method}_acc"][n])
        test = scores[f"test_{method}_acc"]
        put(f"{prefix}selected_gain_vs_last", mean_ci(test[:, n] - test[:, 0]))
    for split in SCORED_SPLITS:
        put(f"last_{split}_acc", per_n[f"{split}_single_acc"][0])
        for key, values in scores.items():
            if values.ndim == 1 and key.startswith(f"{split}_") and key.endswith("_acc"):
                put(key, mean_ci(values))
    return per_n, summary
