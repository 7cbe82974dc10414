"""Training: one compiled TensorFlow loop that trains a group of seeds together and keeps the window.

The semantics are Keras' ``fit(shuffle=True)``, per seed: every epoch visits the training rows in a
fresh random order, in batches of ``batch_size`` (the last one smaller), one optimizer step per
batch, loss categorical cross-entropy plus the model's own losses. Seed ``s`` initialises its model
after ``keras.utils.set_random_seed(s)`` and orders epoch ``e``'s rows by ``(s, e)`` alone, so the
numbers do not depend on how the epochs are split into calls (``polyexp.core.shuffle`` draws the
orders in NumPy, every seed's for a block of epochs, which each call of the graph takes as an
input). The learning curves score each seed on the whole training, validation and test splits
(``fit`` reports a running mean over the epoch's batches instead) after every ``curve_every``-th
epoch, the window's epochs and the last one; the
running mean of the batch losses, kept every epoch, stops training as soon as it diverges.

The S seeds' weights are stacked along a leading axis: Keras' ``stateless_call`` under
``tf.vectorized_map`` computes every seed's gradients in one graph, and the optimizer (an elementwise
one, as SGD and Adam are) steps the stacked variables as one model. A group of one seed runs the same
loop without the vectorisation; so does a model that cannot be vectorised, one seed after another.
The window's checkpoints are copied inside the graph into ``K`` preallocated slots: at the end of
their epochs, or, for a window by steps, after their optimizer steps (steps count from 1, across
epochs). A learning-rate schedule (``polyexp.core.schedules``) sets the optimizer's rate before every
step to the schedule's factor times the optimizer's ``learning_rate``, the same for every seed.

In-training averages (``polyexp.core.in_training``), updated inside the loop: EMAs of the weights
after every step (``ema_decays``), SWA's equal mean of the weights after every epoch from
``swa_start``, and, with a schedule-free optimizer, its averaged sequence ``x`` (``schedule_free_x``).
Their other weights (BatchNorm statistics) are the final model's::

    trajectory = train(build_model, build_optimizer, data, seeds=[0, 1], epochs=500, batch_size=32,
                       window=[500, 499, ..., 491])
    trajectory.checkpoints[0].shape     # (2, 10, 2, 25): the first kernel of each seed's 10 members
    trajectory.history["test_acc"][:, -1]   # each seed's test accuracy after epoch 500
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from polyexp.core.data import SPLITS, Dataset
from polyexp.core.errors import PolyexpError, TrainingDiverged
from polyexp.core.in_training import in_training_averages
from polyexp.core.metrics import correct_and_cross_entropy, mean_cross_entropy
from polyexp.core.registry import BoundPlugin
from polyexp.core.schedules import batches_per_epoch, factors
from polyexp.core.shuffle import orders
from polyexp.core.trajectory import HISTORY_KEYS, Trajectory
from polyexp.core.window import StepWindow

log = logging.getLogger(__name__)

_SECONDS_PER_CALL = 0.25  # long enough to amortise a call, short enough for progress and Ctrl-C


def train(
    build_model: Callable[[], keras.Model],
    build_optimizer: Callable[[], keras.optimizers.Optimizer],
    data: Dataset,
    *,
    seeds: Sequence[int],
    epochs: int,
    batch_size: int,
    window: Sequence[int] | StepWindow,
    schedule: BoundPlugin | None = None,
    ema_decays: Sequence[float] = (),
    swa_start: int | None = None,
    curve_every: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Trajectory:
    """Train one model per seed for ``epochs`` and keep their weights at the ``window`` epochs (or steps).

    ``schedule`` None keeps the optimizer's rate. ``curve_every`` None scores the curves every epoch
    for one seed, every 10th for a group (where scoring every seed on every split dominates). Raises
    TrainingDiverged, with the epoch and seed, as soon as a training loss is NaN or infinite.
    """
    models = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        models.append(build_model())
    per_epoch = batches_per_epoch(len(data.x_train), batch_size)
    rates = None if schedule is None else factors(schedule, epochs, per_epoch)
    settings = dict(data=data, epochs=epochs, batch_size=batch_size, ema_decays=tuple(ema_decays),
                    swa_start=swa_start, curve_every=curve_every or (1 if len(models) == 1 else 10),
                    rate_factors=None if rates is None or np.all(rates == 1) else rates,
                    **_members(window, epochs, per_epoch))
    if len(models) > 1:
        optimizer = build_optimizer()
        if optimizer.clipnorm or optimizer.global_clipnorm:
            log.info("the optimizer clips gradients by norm, which would mix the seeds of a vectorised group; "
                     "training the %d seeds one after another", len(seeds))
        else:
            try:
                return _Loop(models, list(seeds), optimizer, vectorize=True, **settings).train(on_progress)
            except (PolyexpError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                log.warning("the model cannot be trained as one vectorised group (%s: %s); training the %d "
                            "seeds one after another", type(exc).__name__, str(exc)[:200], len(seeds))
    done = 0

    def progress(epochs_done: int) -> None:  # in epochs of the whole group
        if on_progress is not None:
            on_progress((done + epochs_done) // len(seeds))

    parts = []
    for model, seed in zip(models, seeds, strict=True):
        parts.append(_Loop([model], [seed], build_optimizer(), vectorize=False, **settings).train(progress))
        done += epochs
    return _concatenate(parts)


def _members(window: Sequence[int] | StepWindow, epochs: int, per_epoch: int) -> dict[str, list[int] | None]:
    """The members' epochs (a step's epoch is the one it is in) and, for a window by steps, their steps."""
    if not isinstance(window, StepWindow):
        return {"window": list(window), "window_steps": None}
    steps = window.members(epochs * per_epoch)
    return {"window": [math.ceil(step / per_epoch) for step in steps], "window_steps": steps}


def configure_threads(threads: int) -> None:
    """Limit TensorFlow's thread pools, as long as TensorFlow has not started yet in this process."""
    config = tf.config.threading
    if (config.get_intra_op_parallelism_threads(), config.get_inter_op_parallelism_threads()) == (threads, threads):
        return
    try:
        config.set_intra_op_parallelism_threads(threads)
        config.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already started: a pool worker's later jobs keep the first setting
        pass


class _Loop:
    """The graph: ``run(first_epoch, count)`` trains ``count`` epochs and returns their metrics."""

    def __init__(
        self,
        models: list[keras.Model],
        seeds: list[int],
        optimizer: keras.optimizers.Optimizer,
        *,
        vectorize: bool,
        data: Dataset,
        epochs: int,
        batch_size: int,
        window: list[int],
        window_steps: list[int] | None,
        rate_factors: np.ndarray | None,
        ema_decays: tuple[float, ...],
        swa_start: int | None,
        curve_every: int,
    ) -> None:
        self.model, self.seeds, self.optimizer, self.vectorize = models[0], seeds, optimizer, vectorize
        self.epochs = epochs
        self.splits = {split: tuple(map(tf.constant, data.split(split))) for split in SPLITS}
        self.rows, self.batch_size = len(data.x_train), batch_size
        self.steps = batches_per_epoch(self.rows, batch_size)
        self.rate_factors = None if rate_factors is None else tf.constant(rate_factors, tf.float32)
        if rate_factors is not None:
            if not isinstance(optimizer.learning_rate, keras.Variable):
                raise PolyexpError("a schedule sets the optimizer's rate every step: the optimizer plugin must "
                                   "give a fixed learning_rate, not a Keras LearningRateSchedule")
            self.base_rate = tf.constant(optimizer.learning_rate.numpy(), tf.float32)

        def stacked(variables: Callable[[keras.Model], list]) -> list[np.ndarray]:
            per_model = [[v.numpy() for v in variables(m)] for m in models]
            return [np.stack(values) for values in zip(*per_model, strict=True)]

        self.trainable = [keras.Variable(v, name=f"stacked_{i}") for i, v in enumerate(stacked(
            lambda m: m.trainable_variables))]
        self.state = [tf.Variable(v, trainable=False) for v in stacked(lambda m: m.non_trainable_variables)]
        optimizer.build(self.trainable)

        place = {id(v): ("trainable", i) for i, v in enumerate(self.model.trainable_variables)}
        place |= {id(v): ("state", i) for i, v in enumerate(self.model.non_trainable_variables)}
        self.weight_places = [place[id(w)] for w in self.model.weights]  # model.weights -> stacked variable
        self.window_steps = window_steps
        kept_at = window if window_steps is None else window_steps  # epochs, or steps
        slot_of = np.full((epochs if window_steps is None else epochs * self.steps) + 1, -1, dtype=np.int32)
        slot_of[np.asarray(kept_at)] = np.arange(len(window), dtype=np.int32)
        self.window = np.asarray(window, dtype=np.int64)
        self.slot_of = tf.constant(slot_of)  # epoch (or step) -> its window slot, -1 for none
        scored = np.arange(epochs + 1) % curve_every == 0
        scored[[1, epochs, *window]] = True
        self.curve_epochs = np.flatnonzero(scored[1:]) + 1
        self.scored = tf.constant(scored)
        self.slots = [tf.Variable(tf.zeros((len(window), *v.shape), v.dtype), trainable=False)
                      for v in self._stacked_weights()]

        self.averages = in_training_averages(self.trainable, optimizer, ema_decays, swa_start)
        # Plain tf.while_loop instead of AutoGraph: tracing takes half the time.
        signature = [tf.TensorSpec((), tf.int32), tf.TensorSpec((None, len(seeds), self.rows), tf.int32)]
        self.run = tf.function(self._run, input_signature=signature, autograph=False)

    def _stacked_weights(self) -> list:
        """The stacked variables in ``model.weights`` order."""
        return [getattr(self, kind)[i] for kind, i in self.weight_places]

    def train(self, on_progress: Callable[[int], None] | None) -> Trajectory:
        chunks: list[np.ndarray] = []
        done, count = 0, 1  # the first call also traces the graph: keep it short
        while done < self.epochs:
            count = min(count, self.epochs - done)
            started = time.perf_counter()
            epochs = np.arange(done + 1, done + count + 1)
            metrics, losses = self.run(tf.constant(done + 1), tf.constant(orders(self.seeds, epochs, self.rows)))
            chunks.append(metrics.numpy())
            elapsed = time.perf_counter() - started
            bad = np.argwhere(~np.isfinite(losses.numpy()))  # (count, S): each epoch's mean batch loss
            if bad.size:
                row, s = bad[0]
                epoch = done + int(row) + 1
                scored = self.curve_epochs[self.curve_epochs <= epoch]
                history = {k: v[:, scored - 1] for k, v in self._history(chunks, all_epochs=True).items()}
                raise TrainingDiverged(epoch, float(losses.numpy()[row, s]), self.seeds[s], history, scored)
            done += count
            if on_progress is not None:
                on_progress(done)
            grow = 16 if len(chunks) == 1 else _SECONDS_PER_CALL / max(elapsed, 1e-4)
            count = max(1, min(int(count * grow), 8 * count))
        return Trajectory(
            seeds=np.asarray(self.seeds, dtype=np.int64),
            epochs=self.window,
            names=[w.path for w in self.model.weights],
            checkpoints=[np.swapaxes(slot.numpy(), 0, 1) for slot in self.slots],  # (K, S, ...) -> (S, K, ...)
            curve_epochs=self.curve_epochs,
            history=self._history(chunks),
            averages=self._averages_result(),
            steps=None if self.window_steps is None else np.asarray(self.window_steps, dtype=np.int64),
        )

    def _history(self, chunks: list[np.ndarray], all_epochs: bool = False) -> dict[str, np.ndarray]:
        """The learning curves at the scored epochs (or at every epoch so far, NaN where not scored)."""
        history = np.concatenate(chunks).astype(np.float64).transpose(1, 0, 2)  # (S, epochs, keys)
        for split in SPLITS:  # the graph counts correct predictions: exact accuracies
            history[:, :, HISTORY_KEYS.index(f"{split}_acc")] /= len(self.splits[split][1])
        if not all_epochs:
            history = history[:, self.curve_epochs - 1]
        return {key: history[:, :, i] for i, key in enumerate(HISTORY_KEYS)}

    def _averages_result(self) -> dict[str, list[np.ndarray]]:
        """The in-training averages as full weight lists: averaged trainable weights, final others."""
        runs = {name: weights for average in self.averages for name, weights in average.result(self.trainable).items()}
        return {name: [averaged[i] if kind == "trainable" else self.state[i].numpy() for kind, i in self.weight_places]
                for name, averaged in runs.items()}

    def _run(self, first: tf.Tensor, chunk: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Train the epochs ``first, first+1, ...``: ``chunk`` holds their row orders, (epochs, S, rows)."""
        unscored = tf.fill([len(self.seeds), len(HISTORY_KEYS)], np.nan)
        count = tf.shape(chunk)[0]

        def epoch(i: tf.Tensor, metrics: tf.TensorArray, losses: tf.TensorArray) -> tuple:
            batch_loss = self._train_epoch(chunk[i], first + i)
            keep = [] if self.window_steps else [self._keep(first + i)]
            after = [op for average in self.averages for op in average.after_epoch(first + i, self.trainable)]
            with tf.control_dependencies([*keep, *after]):
                row = tf.cond(self.scored[first + i], self._score_splits, lambda: unscored)
                return i + 1, metrics.write(i, row), losses.write(i, batch_loss)

        arrays = tf.TensorArray(tf.float32, size=count), tf.TensorArray(tf.float32, size=count)
        _, metrics, losses = tf.while_loop(lambda i, *_: i < count, epoch, (tf.constant(0), *arrays))
        return metrics.stack(), losses.stack()  # (count, S, len(HISTORY_KEYS)), (count, S)

    def _per_seed(self, fn: Callable[..., tuple], *stacked: list[tf.Tensor]) -> tuple:
        """``fn`` applied to each seed's slice of the ``stacked`` arguments; results stacked again."""
        if self.vectorize:
            return tf.vectorized_map(lambda args: fn(*args), stacked)
        results = fn(*(tf.nest.map_structure(lambda t: t[0], arg) for arg in stacked))
        return tf.nest.map_structure(lambda t: tf.expand_dims(t, 0), results)

    def _values(self) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        return [tf.convert_to_tensor(v) for v in self.trainable], [tf.convert_to_tensor(v) for v in self.state]

    def _seed_step(
        self, trainable: list[tf.Tensor], state: list[tf.Tensor], x: tf.Tensor, y: tf.Tensor
    ) -> tuple[list[tf.Tensor], list[tf.Tensor], tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            probabilities, state, losses = self.model.stateless_call(
                trainable, state, x, training=True, return_losses=True
            )
            loss = mean_cross_entropy(y, probabilities)
            if losses:
                loss += tf.add_n(losses)
        return tape.gradient(loss, trainable), list(state), loss

    def _train_epoch(self, orders: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
        """Epoch ``epoch``'s optimizer steps, in each seed's row ``orders`` (S, rows); each seed's mean batch loss."""
        x_train, y_train = self.splits["train"]
        steps_before = (epoch - 1) * self.steps

        def step(i: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            batch = orders[:, i * self.batch_size : (i + 1) * self.batch_size]
            grads, state, loss = self._per_seed(
                self._seed_step, *self._values(),
                tf.gather(x_train, batch), tf.gather(y_train, batch),
            )
            with tf.control_dependencies(self._set_rate(steps_before + i)):
                self.optimizer.apply(grads, self.trainable)
            updates = [v.assign(s) for v, s in zip(self.state, state, strict=True)]
            updates += [op for average in self.averages for op in average.after_step(self.trainable)]
            if self.window_steps:
                with tf.control_dependencies(updates):  # the weights after this step, state included
                    updates.append(self._keep(steps_before + i + 1))
            with tf.control_dependencies(updates):
                return i + 1, total + loss

        _, total = tf.while_loop(lambda i, _: i < self.steps, step,
                                 (tf.constant(0), tf.zeros([len(self.seeds)])))
        return total / self.steps

    def _set_rate(self, done: tf.Tensor) -> list[tf.Operation]:
        """Before the step that follows ``done`` steps: the optimizer's rate as the schedule says."""
        if self.rate_factors is None:
            return []
        return [self.optimizer.learning_rate.assign(self.base_rate * self.rate_factors[done])]

    def _keep(self, at: tf.Tensor) -> tf.Operation:
        """Copy every seed's weights into the window slot of this epoch (or step), if it has one."""
        slot = self.slot_of[at]

        def copy() -> tf.Operation:
            pairs = zip(self.slots, self._stacked_weights(), strict=True)
            return tf.group(*[kept[slot].assign(tf.convert_to_tensor(v)) for kept, v in pairs])

        return tf.cond(slot >= 0, copy, tf.no_op)

    def _score_splits(self) -> tf.Tensor:
        """Every seed's correct count and loss on each split: (S, len(HISTORY_KEYS))."""
        columns = []
        for split in SPLITS:
            x, y = self.splits[split]
            (probabilities,) = self._per_seed(
                lambda t, s, x=x: (self.model.stateless_call(t, s, x, training=False)[0],),
                *self._values(),
            )
            columns.extend(correct_and_cross_entropy(y, probabilities))
        return tf.stack(columns, axis=1)


def _concatenate(parts: list[Trajectory]) -> Trajectory:
    """One trajectory of the seeds trained one after another."""
    first = parts[0]
    return Trajectory(
        seeds=np.concatenate([p.seeds for p in parts]),
        epochs=first.epochs,
        names=first.names,
        curve_epochs=first.curve_epochs,
        checkpoints=[np.concatenate(ws) for ws in zip(*(p.checkpoints for p in parts), strict=True)],
        history={k: np.concatenate([p.history[k] for p in parts]) for k in first.history},
        averages={name: [np.concatenate(ws) for ws in zip(*(p.averages[name] for p in parts), strict=True)]
                  for name in first.averages},
        steps=first.steps,
    )
