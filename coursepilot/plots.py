"""Figures for reports, drawn without pyplot so that steps on threads side by side can each draw one."""

from __future__ import annotations

from .imports import IMPORTING


def figure(width: float, height: float):
    """A new matplotlib ``Figure`` of ``width`` x ``height`` inches and its one axes.

    pyplot keeps one global list of open figures, which two threads would share; a bare ``Figure`` saves
    through its own Agg canvas and is freed with the last reference to it.
    """
    with IMPORTING:
        from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def save_png(fig, target, dpi: int) -> None:
    """Write ``fig`` as a PNG to ``target`` (a path or a binary file), trimmed to what is drawn.

    A process's first PNG imports the Agg canvas and Pillow's plugins, so it is written under the lock too.
    """
    with IMPORTING:
        fig.savefig(target, format="png", dpi=dpi, bbox_inches="tight")
