"""A training job whose checkpoint holds numpy arrays and a numpy random generator, and resumes exactly.

    python examples/training_checkpoint.py --dir DIR --stop-after 1700   # interrupted at step 1700
    python examples/training_checkpoint.py --dir DIR                     # resumes, finishes, checks

The job fits a linear model by stochastic gradient descent: 3,000 steps, each
on a mini-batch drawn from a numpy ``Generator``. The checkpoint holds the
weights (a small array: written number by number, NaN-safe and bit-exact),
the loss curve (a longer array: base64 under a readable header) and the
generator, taught to snapmixin once with ``register_type`` (its
``bit_generator.state``). So a resumed run draws exactly the batches an
uninterrupted one would, and ends with the very same bits.

The weights change in place (``np.subtract(..., out=...)``), which mutation
tracking cannot see: ``mark_mutated()`` says so. The dataset is a transient
field: rebuilt on demand, never written.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapmixin import Snapshottable, SnapStore, register_type, snapshot_every, transient

STEPS = 3000
FEATURES = 8
SAMPLES = 512
BATCH = 32
LEARNING_RATE = 0.05
SEED = 2024


def generator_from_state(state: Any) -> np.random.Generator:
    """A numpy Generator from its saved ``bit_generator.state``: PCG64 only (what default_rng makes)."""
    bits = np.random.PCG64()
    bits.state = state  # numpy checks the dict (and that it names PCG64)
    return np.random.Generator(bits)


# Taught once, at import time: a Generator anywhere in a state is saved by its state.
register_type(np.random.Generator, encode=lambda g: g.bit_generator.state, decode=generator_from_state)


def make_dataset() -> tuple[np.ndarray, np.ndarray]:
    """The training data: the same every time (its own seed), so it need not be saved."""
    g = np.random.default_rng(7)
    x = g.normal(size=(SAMPLES, FEATURES))
    true_w = np.linspace(-1.0, 1.0, FEATURES)
    return x, x @ true_w + 0.05 * g.normal(size=SAMPLES)


@dataclass
class Training(Snapshottable):
    step: int = 0
    weights: np.ndarray = field(default_factory=lambda: np.zeros(FEATURES))
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(SEED))
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))  # one entry per 10 steps
    dataset: tuple[np.ndarray, np.ndarray] | None = transient(default=None)  # not saved

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        if self.dataset is None:
            self.dataset = make_dataset()
        return self.dataset

    @snapshot_every(500)  # a checkpoint every 500 steps; one call is one mutation
    def train_step(self) -> None:
        x, y = self.data()
        batch = self.rng.integers(0, SAMPLES, size=BATCH)  # the generator moves: saved with the step
        error = x[batch] @ self.weights - y[batch]
        np.subtract(self.weights, LEARNING_RATE * (x[batch].T @ error) / BATCH, out=self.weights)
        self.mark_mutated()  # an in-place change: tracking cannot see it
        self.step += 1
        if self.step % 10 == 0:
            self.losses = np.append(self.losses, float(np.mean(error**2)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where checkpoints go (default: a new temp directory)")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="interrupt the job after step N (like Ctrl-C: no final save)")
    args = parser.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="snapmixin-training-")
    print(f"checkpoints go to {directory}")

    store = SnapStore(directory)
    job = Training.open(store)
    if job.step >= STEPS:
        print(f"the job already finished (step {job.step}): nothing to do")
    elif job.step:
        print(f"resuming from step {job.step} (checkpoint seq {job.snapshot_seq}), not from 0")
    else:
        print("no checkpoint yet: starting from step 0")
    first = job.step
    try:
        while job.step < STEPS:
            job.train_step()
            if job.step == args.stop_after:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        saved = store.latest()
        print(f"interrupted at step {job.step}, with no final save")
        if saved is None:
            print("no checkpoint was written before the interruption: the next run starts over")
            return 1
        print(f"the last checkpoint on disk is step {saved.seq}: run again with --dir {directory}")
        return 0 if args.stop_after == job.step else 130
    if job.step > first:
        job.snapshot()
        print(f"finished: {job.step - first} steps, final loss {job.losses[-1]:.5f}")

    state = json.loads((Path(directory) / "snapshot.json").read_text())["state"]
    print("in the file, weights:", json.dumps(state["weights"])[:120])
    print("in the file, losses: ", json.dumps({k: v for k, v in state["losses"].items()
                                               if k != "data_b64"}), "+ data_b64")
    print("in the file, rng:    ", json.dumps(state["rng"])[:120])

    # Check: the same bits as one uninterrupted run, computed here without any store.
    reference = Training()
    while reference.step < STEPS:
        reference.train_step()
    saved_job, seq = store.restore(Training)
    same = (saved_job.step == STEPS and seq == STEPS
            and saved_job.weights.tobytes() == reference.weights.tobytes()
            and saved_job.losses.tobytes() == reference.losses.tobytes()
            and saved_job.rng.bit_generator.state == reference.rng.bit_generator.state
            and saved_job.dataset is None)
    if not same:
        print(f"FAILED: the saved result differs from an uninterrupted run's (seq {seq})")
        return 1
    print(f"OK: the saved weights, loss curve and generator (seq {seq}) are bit for bit "
          "those of one uninterrupted run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
