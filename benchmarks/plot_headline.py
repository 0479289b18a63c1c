"""Draw README's headline plot: the shipped hybrid against the best bare-library peer, per dataset.

Usage: python benchmarks/plot_headline.py [--out FILE]

A grouped bar chart of test nDCG@10 (seed 0): for each dataset, `hybrid` beside the best bare peer,
labelled with the peer's name and hybrid's ratio to it. Trains nothing: the numbers are the HEADLINE
table at the top of this script, copied from RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# From RESULTS.md, "Against the strongest well-known models" (benchmarks/bench_quality.py, 2026-11-29):
# dataset, hybrid nDCG@10 (seed 0), best bare peer, its nDCG@10, ratio.
HEADLINE = [
    ("MARS", 0.425, "EASE", 0.367, 1.158),
    ("OULAD", 0.770, "popularity", 0.683, 1.128),
    ("synthetic S", 0.275, "EASE", 0.260, 1.060),
]

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "headline.png"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where to write the PNG (default: docs/img/headline.png in the repository); its folder is "
        "created",
    )
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    width = 0.38
    for i, (dataset, hybrid, peer, peer_ndcg, ratio) in enumerate(HEADLINE):
        h = ax.bar(i - width / 2, hybrid, width, color="#2b6cb0", label="hybrid" if i == 0 else None)
        p = ax.bar(
            i + width / 2, peer_ndcg, width, color="#a0aec0", label="best bare peer" if i == 0 else None
        )
        ax.bar_label(h, labels=[f"{hybrid:.3f}\n{ratio:.3f}x"], padding=2, fontsize=9)
        ax.bar_label(p, labels=[f"{peer}\n{peer_ndcg:.3f}"], padding=2, fontsize=9)
    ax.set_xticks(range(len(HEADLINE)), [row[0] for row in HEADLINE])
    ax.set_ylabel("test nDCG@10 (seed 0)")
    ax.set_ylim(0, 1.0)
    ax.set_title("hybrid against the best bare-library peer (RESULTS.md, 2026-11-29)", fontsize=11)
    ax.legend(loc="upper left", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
