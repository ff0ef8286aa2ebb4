"""The loss-curve PNG written beside every checkpoint (headless: the Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_history(history: dict[str, list[float]], path: str | Path, title: str = "") -> Path:
    """One panel per loss (MSE, softmax CE), train and validation curves per epoch."""
    path = Path(path)
    panels = [("mse", "rating MSE"), ("ce", "watch cross-entropy")]
    panels = [(k, label) for k, label in panels if history.get(f"train_{k}")]
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 3.5), squeeze=False
    )
    for ax, (key, label) in zip(axes[0], panels, strict=False):
        for split in ("train", "val"):
            ys = history.get(f"{split}_{key}") or []
            if ys:
                ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
