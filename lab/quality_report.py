"""The quality target's table and plot from two runs: `rnnfast train`'s history and quality.py's.

    python lab/quality_report.py --rnnfast runs/q/ --torch runs/q-torch.csv \
        --png runs/quality.png

``--rnnfast`` is the output folder of an `rnnfast train` run (its history.csv, with the training
seconds of every step, and a checkpoint for the batch shape); ``--torch`` the CSV that
``lab/quality.py --framework torch`` writes.  Both time axes are training time, validation
excluded.  Prints two Markdown tables: the held-out loss at given minutes, and the minutes and
characters each run needed to first reach given loss levels.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from rnnfast import checkpoint

MINUTES = (1, 2, 5, 10, 15, 20, 25, 30)
LEVELS = (2.0, 1.8, 1.7, 1.6, 1.55, 1.5, 1.48, 1.47)


def rnnfast_curve(run_dir: Path) -> list[tuple[float, int, float]]:
    """(training seconds, training characters, validation loss) at each validation."""
    config = checkpoint.load(run_dir / "latest.npz").training["config"]
    chars_per_step = config["batch_size"] * config["seq_length"]
    with open(run_dir / "history.csv", newline="") as f:
        return [
            (float(row["seconds"]), int(row["step"]) * chars_per_step, float(row["val_loss"]))
            for row in csv.DictReader(f)
            if row["val_loss"]
        ]


def torch_curve(path: Path) -> list[tuple[float, int, float]]:
    with open(path, newline="") as f:
        return [
            (float(row["seconds"]), int(row["train_chars"]), float(row["val_loss"]))
            for row in csv.DictReader(f)
        ]


def at_minutes(curve, minutes: float):
    """The last validation at or before ``minutes`` of training: (loss, chars), or None."""
    done = [(loss, chars) for seconds, chars, loss in curve if seconds <= minutes * 60]
    return done[-1] if done else None


def first_reaching(curve, level: float):
    """The first validation with loss <= level: (seconds, chars), or None."""
    return next(((s, c) for s, c, loss in curve if loss <= level), None)


def _cell(found, fmt) -> str:
    return "not reached" if found is None else fmt(*found)


def tables(curves: dict[str, list]) -> str:
    names = list(curves)
    head = "| training time | " + " | ".join(f"{n} val loss | chars" for n in names) + " |"
    lines = [head, "|---|" + "---|---|" * len(names)]
    for m in MINUTES:
        cells = []
        for n in names:
            found = at_minutes(curves[n], m)
            cells += ["-", "-"] if found is None else [f"{found[0]:.3f}", f"{found[1] / 1e6:.1f}M"]
        lines.append(f"| {m} min | " + " | ".join(cells) + " |")
    best = []
    for n in names:
        seconds, chars, loss = min(curves[n], key=lambda row: row[2])
        best += [f"**{loss:.3f}** (at {seconds / 60:.1f} min)", f"{chars / 1e6:.1f}M"]
    lines.append("| best | " + " | ".join(best) + " |")
    lines += ["", "| held-out loss | " + " | ".join(f"{n}: minutes, chars" for n in names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for level in LEVELS:
        cells = [
            _cell(first_reaching(curves[n], level), lambda s, c: f"{s / 60:.1f}, {c / 1e6:.1f}M")
            for n in names
        ]
        lines.append(f"| <= {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(curves: dict[str, list], path: Path, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_time, by_chars) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for name, curve in curves.items():
        seconds, chars, loss = zip(*curve, strict=True)
        by_time.plot([s / 60 for s in seconds], loss, "o-", markersize=3, label=name)
        by_chars.plot([c / 1e6 for c in chars], loss, "o-", markersize=3, label=name)
    for ax, label in ((by_time, "training minutes"), (by_chars, "training characters (M)")):
        ax.axhline(target, color="gray", linestyle="--", linewidth=0.8)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    by_time.set_ylabel("held-out loss (nats per character)")
    lows = [loss for curve in curves.values() for _, _, loss in curve]
    by_time.set_ylim(min(lows) - 0.05, min(2.2, max(lows)) + 0.05)
    by_time.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rnnfast", type=Path, required=True, help="an rnnfast train --out folder")
    parser.add_argument("--torch", type=Path, required=True, help="quality.py's CSV")
    parser.add_argument("--png", type=Path, help="write the two learning curves here")
    parser.add_argument("--target", type=float, default=1.47)
    args = parser.parse_args(argv)
    curves = {"rnnfast": rnnfast_curve(args.rnnfast), "PyTorch": torch_curve(args.torch)}
    for name, curve in curves.items():
        if not curve or any(math.isnan(loss) for _, _, loss in curve):
            raise SystemExit(f"{name}: no validation losses to report")
    print(tables(curves))
    if args.png:
        plot(curves, args.png, args.target)


if __name__ == "__main__":
    main()
