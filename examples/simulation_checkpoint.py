"""A long job that checkpoints itself and resumes after an interruption.

    python examples/simulation_checkpoint.py --dir DIR --stop-after 7000   # interrupted at step 7000
    python examples/simulation_checkpoint.py --dir DIR                     # resumes, finishes

The job estimates pi by throwing random points at a square (Monte Carlo): 100
points a step, 20,000 steps, a second or two. Its random generator's state is
part of the saved state, so a resumed run draws exactly the numbers an
uninterrupted run would have: the final answer is the same however many times
the job is stopped.

Checkpoints are automatic: every 5,000 steps of a run (deterministic), and
after any step once 0.1 s have passed since the last one (the clock).
``--stop-after N`` raises KeyboardInterrupt after step N, as Ctrl-C would:
there is no final save, so what survives is the last automatic checkpoint,
and the next run continues from it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass

from snapmixin import Snapshottable, SnapStore, snapshot_every

STEPS = 20_000
POINTS_PER_STEP = 100
SEED = 2024


def throw(rng: int, points: int) -> tuple[int, int]:
    """Throw ``points`` random points at the unit square; return (new rng state, points inside the circle)."""
    inside = 0
    for _ in range(points):
        rng = (rng * 6364136223846793005 + 1442695040888963407) % 2**64  # a 64-bit LCG
        x = (rng >> 40) / 2**24
        rng = (rng * 6364136223846793005 + 1442695040888963407) % 2**64
        y = (rng >> 40) / 2**24
        inside += x * x + y * y <= 1.0
    return rng, inside


@dataclass
class Simulation(Snapshottable):
    step: int = 0
    rng: int = SEED
    inside: int = 0

    @snapshot_every(5000, seconds=0.1)  # a checkpoint every 5000 steps, and at least every 0.1 s
    def advance(self) -> None:
        self.rng, hits = throw(self.rng, POINTS_PER_STEP)
        self.inside += hits
        self.step += 1

    @property
    def pi(self) -> float:
        return 4 * self.inside / (self.step * POINTS_PER_STEP) if self.step else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where checkpoints go (default: a new temp directory)")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="interrupt the job after step N (like Ctrl-C: no final save)")
    args = parser.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="snapmixin-simulation-")
    print(f"checkpoints go to {directory}")

    store = SnapStore(directory)
    sim = Simulation.open(store)  # the last checkpoint, or a new Simulation()
    if sim.step >= STEPS:
        print(f"the job already finished (step {sim.step}): nothing to do")
    elif sim.step:
        print(f"resuming from step {sim.step} (checkpoint seq {sim.snapshot_seq}), not from 0")
    else:
        print("no checkpoint yet: starting from step 0")
    started, first = time.monotonic(), sim.step
    checkpoints: list[int] = []  # the checkpoints this run wrote, as seen on disk

    def progress() -> None:
        saved = store.latest()
        if saved and saved.seq > first and saved.seq not in checkpoints:
            checkpoints.append(saved.seq)
        if sim.step % 250 == 0 or sim.step == STEPS:
            print(f"\r  step {sim.step:>6}/{STEPS}  {100 * sim.step // STEPS:>3}%  pi ~ {sim.pi:.5f}  "
                  f"last checkpoint: step {saved.seq if saved else '-':<6}", end="", flush=True)

    def written() -> str:
        timed = [k for k in checkpoints if (k - first) % 5000]  # the others: every 5000 steps of this run
        return f"{len(checkpoints)} checkpoints written, {len(timed)} of them time-based: {checkpoints}"

    try:
        while sim.step < STEPS:
            sim.advance()
            if sim.step % 50 == 0:
                progress()
            if sim.step == args.stop_after:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        saved = store.latest()
        print(f"\ninterrupted at step {sim.step}, with no final save; {written()}"
              + ("" if args.stop_after == sim.step else " (Ctrl-C)"))
        if saved is None:
            print("no checkpoint was written before the interruption: the next run starts over")
            return 1
        print(f"the last checkpoint on disk is step {saved.seq}: run again with --dir {directory} "
              "to resume from it")
        return 0 if args.stop_after == sim.step else 130

    if sim.step > first:
        sim.snapshot()  # the final result, saved (a no-op rewrite if the last step was a checkpoint)
    took = time.monotonic() - started
    print(f"\nfinished: {sim.step - first} steps in {took:.1f} s, pi ~ {sim.pi:.6f}; {written()}")

    # Check: the same numbers as one uninterrupted run, computed here without any store.
    rng, inside = SEED, 0
    for _ in range(STEPS):
        rng, hits = throw(rng, POINTS_PER_STEP)
        inside += hits
    state, seq = store.restore(Simulation)
    if (state.step, state.rng, state.inside, seq) != (STEPS, rng, inside, STEPS):
        print(f"FAILED: the saved result differs from an uninterrupted run's (inside {inside}, "
              f"got {state.inside}; seq {seq})")
        return 1
    print(f"OK: the saved result (seq {seq}) is exactly what one uninterrupted run computes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
