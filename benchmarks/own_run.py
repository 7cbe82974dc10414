"""Your own run, at real size: ``trajectory=files`` against a plain Keras script doing the same scoring.

    python benchmarks/own_run.py                    # 30,000 x 16x16x3 and 50,000 x 32x32x3, 3 rounds
    python benchmarks/own_run.py --sizes small --repeats 5
    python benchmarks/own_run.py --quick            # 3,000 x 16x16x3, 1 round: a smoke run
    python benchmarks/own_run.py --write docs/speed.md   # also put the table in the page, with its command

For each size it writes an image ``.npz`` (float32, 10 classes, 80/10/10 percent of the rows in
``x_train``/``y_train``, ``x_val``/``y_val``, ``x_test``/``y_test``), trains a small conv+BatchNorm
network (three stride-2 convolutions of 16, 32 and 64 filters, each with BatchNorm and ReLU, global
average pooling, a softmax: 24,618 weights) with a plain ``model.fit`` on 2,048 of the training rows for
10 epochs, ``polyexp.keras.CheckpointWindow`` keeping all 10, and then measures, each in a fresh process,
interleaved one of each per round:

  polyexp     ``python -m polyexp trajectory=files trajectory.glob=ckpt/*.keras data=npz data.path=...``
              on a store an earlier job made: scoring, outputs, plots and MLflow logging
  keras       the same scoring in plain Keras (``REFERENCE`` below): each checkpoint file loaded and
              scored on every split with ``predict(batch_size=1024)``; for n = 1..10 the average of the
              n latest, its BatchNorm statistics recomputed in batches over the training rows, scored on
              validation and test; the output ensembles from the kept probabilities

CPU-seconds are the process's user + system time and peak memory its resident set's peak (``wait4``'s
``ru_maxrss``), medians over rounds. Targets: polyexp at most 1.0x the reference's CPU-seconds and
1.2x its peak memory, at both sizes. ``TF_ENABLE_ONEDNN_OPTS`` is left as each side would have it: a
plain Keras script gets TensorFlow's default, polyexp its own (see ``polyexp/__init__.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SIZES = {"quick": (3_000, 16), "small": (30_000, 16), "large": (50_000, 32)}  # rows, side of a 3-channel image
CLASSES, EPOCHS, FIT_ROWS, BATCH = 10, 10, 2048, 1024
TARGET_CPU, TARGET_RSS = 1.0, 1.2

REFERENCE = r'''
import glob, sys
import numpy as np, keras
path, pattern, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
with np.load(path) as arrays:
    splits = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in ("train", "val", "test")}
files = sorted(glob.glob(pattern))[::-1]  # the latest first
model = keras.saving.load_model(files[0], compile=False)

def score(probabilities, y):
    return (probabilities.argmax(1) == y).mean(), -np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1)).mean()

members, kept, scores = [], {"val": [], "test": []}, []
for file in files:
    model.load_weights(file)
    members.append([w.numpy() for w in model.weights])
    for split, (x, y) in splits.items():
        probabilities = model.predict(x, batch_size=batch, verbose=0)
        scores.append(score(probabilities, y))
        if split in kept:
            kept[split].append(probabilities)
norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
inputs_of = [keras.Model(model.inputs, layer.input) for layer in norms]
x_train = splits["train"][0]
for n in range(1, len(files) + 1):
    model.set_weights([np.mean([m[i] for m in members[:n]], axis=0) for i in range(len(model.weights))])
    for layer, inputs in zip(norms, inputs_of):
        total, square, count = 0.0, 0.0, 0
        for start in range(0, len(x_train), batch):
            a = inputs.predict_on_batch(x_train[start:start + batch]).astype(np.float64)
            a = a.reshape(-1, a.shape[-1])
            total, square, count = total + a.sum(0), square + (a * a).sum(0), count + len(a)
        mean = total / count
        layer.moving_mean.assign(mean.astype("float32"))
        layer.moving_variance.assign((square / count - mean**2).astype("float32"))
    for split in ("val", "test"):
        x, y = splits[split]
        scores.append(score(model.predict(x, batch_size=batch, verbose=0), y))
        scores.append(score(np.mean(kept[split][:n], axis=0), y))
print(f"{scores[0][0]:.4f}")
'''


def make_data(folder: Path, rows: int, side: int, seed: int = 0) -> Path:
    """Class templates (smooth random patterns) plus noise, float32 in the file's train/val/test arrays."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(CLASSES, 4, 4, 3)).astype(np.float32)
    templates = coarse.repeat(side // 4, axis=1).repeat(side // 4, axis=2)
    y = rng.integers(0, CLASSES, size=rows)
    x = np.empty((rows, side, side, 3), np.float32)
    for start in range(0, rows, 5000):  # in parts: no float64 temporary of the whole array
        part = slice(start, min(start + 5000, rows))
        x[part] = 0.5 * templates[y[part]] + rng.normal(size=x[part].shape).astype(np.float32)
    train, val = int(0.8 * rows), int(0.9 * rows)
    path = folder / "data.npz"
    np.savez(path, x_train=x[:train], y_train=y[:train], x_val=x[train:val], y_val=y[train:val],
             x_test=x[val:], y_test=y[val:])
    return path


def train_checkpoints(folder: Path, data: Path) -> str:
    """A plain ``model.fit`` with CheckpointWindow keeping every epoch; returns the files' glob."""
    code = f'''
import keras, numpy as np
from polyexp.keras import CheckpointWindow
keras.utils.set_random_seed(0)
with np.load({str(data)!r}) as arrays:
    x, y = arrays["x_train"][:{FIT_ROWS}], arrays["y_train"][:{FIT_ROWS}]
inputs = keras.Input(x.shape[1:])
h = inputs
for width in (16, 32, 64):
    h = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
h = keras.layers.GlobalAveragePooling2D()(h)
model = keras.Model(inputs, keras.layers.Dense({CLASSES}, activation="softmax")(h))
model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
model.fit(x, y, epochs={EPOCHS}, batch_size=128, verbose=0,
          callbacks=[CheckpointWindow({str(folder / "ckpt")!r}, size={EPOCHS})])
'''
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return str(folder / "ckpt" / "*.keras")


def measure(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(CPU-seconds, peak resident MiB) of one process, from ``wait4``."""
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args[:4])} ... failed:\n{error[-3000:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def bench_size(name: str, repeats: int, work: Path) -> dict[str, tuple[float, float]]:
    rows, side = SIZES[name]
    folder = work / name
    folder.mkdir()
    data = make_data(folder, rows, side)
    pattern = train_checkpoints(folder, data)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "POLYEXP_CACHE_DIR": str(folder / "cache")}
    plain_env = {k: v for k, v in env.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    subprocess.run([sys.executable, "-m", "polyexp", "epochs=10", f"tracking.uri={store}",
                    f"hydra.run.dir={folder / 'warm'}"], cwd=folder, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # the store and experiment exist
    cases = {
        "polyexp": ([sys.executable, "-m", "polyexp", "trajectory=files", f"trajectory.glob={pattern}", "data=npz",
                     f"data.path={data}", f"tracking.uri={store}", f"scoring.batch_size={BATCH}"], env),
        "keras": ([sys.executable, "-c", REFERENCE, str(data), pattern, str(BATCH)], plain_env),
    }
    results: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
    for round_ in range(repeats):
        for case, (args, case_env) in cases.items():
            extra = [f"hydra.run.dir={folder / f'run{round_}'}"] if case == "polyexp" else []
            results[case].append(measure(args + extra, folder, case_env))
            cpu, rss = results[case][-1]
            print(f"  {name} round {round_ + 1}: {case:8s} {cpu:7.1f} CPU-s  {rss:7.0f} MiB", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return {case: (statistics.median(c for c, _ in values), statistics.median(r for _, r in values))
            for case, values in results.items()}


def markdown(table: dict[str, dict[str, tuple[float, float]]], repeats: int, command: str) -> str:
    """The table as docs/speed.md shows it, with the command that measured it."""
    lines = [f"`{command}` (medians of {repeats} interleaved rounds; targets: polyexp <= {TARGET_CPU}x the "
             f"reference's CPU-seconds and <= {TARGET_RSS}x its peak memory):", "",
             "| rows | polyexp CPU-s | Keras CPU-s | ratio | polyexp peak MiB | Keras peak MiB | ratio |",
             "|---|---|---|---|---|---|---|"]
    for name, result in table.items():
        rows, side = SIZES[name]
        (cpu, rss), (ref_cpu, ref_rss) = result["polyexp"], result["keras"]
        lines.append(f"| {rows:,} x {side}x{side}x3 | {cpu:.1f} | {ref_cpu:.1f} | {cpu / ref_cpu:.2f}x | {rss:.0f} | "
                     f"{ref_rss:.0f} | {rss / ref_rss:.2f}x |")
    return "\n".join(lines) + "\n"


def write_block(page: Path, text: str) -> None:
    """Replace what stands between the page's own_run markers with ``text``."""
    start, end = "<!-- own_run:start -->", "<!-- own_run:end -->"
    content = page.read_text()
    if start not in content or end not in content:
        raise SystemExit(f"{page} has no {start} ... {end} block to write the table into")
    head, rest = content.split(start, 1)
    page.write_text(f"{head}{start}\n{text}{end}{rest.split(end, 1)[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,large", help="comma-separated: quick, small, large")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the quick size, one round")
    parser.add_argument("--write", type=Path, help="a page (docs/speed.md) whose own_run block gets the table")
    options = parser.parse_args()
    sizes, repeats = (["quick"], 1) if options.quick else (options.sizes.split(","), options.repeats)
    work = Path(tempfile.mkdtemp(prefix="own_run_"))
    try:
        table = {name: bench_size(name, repeats, work) for name in sizes}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(table, repeats, "python benchmarks/own_run.py " + " ".join(sys.argv[1:]))
    print("\n" + text)
    if options.write:
        write_block(options.write, text)


if __name__ == "__main__":
    main()
