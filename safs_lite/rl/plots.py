"""Cart-pole frames drawn from observations, for `safs_lite.rl.policy` (notebook 09), without a rendering backend.

Gymnasium renders CartPole-v1 with pygame, which the kit does not install. An observation holds everything
a frame shows: the cart's position x and the pole's angle theta (0 = upright, positive = leaning right), so
matplotlib draws the frame from the observation alone: a cart on a track between the walls at +-2.4 (where
an episode ends) and a pole of length 1 (the environment's half-length 0.5, doubled, as its renderer draws it).

Example:
    >>> ep = rl.episode(policy, "CartPole-v1", rl.episode_seeds("evaluation", 1)[0])  # doctest: +SKIP
    >>> plot_cartpole_strip({"dense": ep["observations"]}, frames=6)  # doctest: +SKIP
"""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..study.plots import save_figure

X_LIMIT = 2.4  # CartPole-v1 ends an episode when |x| > 2.4
POLE = 1.0  # drawn pole length (2 x the environment's half-length 0.5)
CART_W, CART_H = 0.5, 0.3


def pole_tip(observation: np.ndarray) -> tuple[float, float]:
    """(x, y) of the pole's tip for one CartPole observation (x, x_dot, theta, theta_dot); the cart's top is y = 0."""
    x, theta = float(observation[0]), float(observation[2])
    return x + POLE * np.sin(theta), POLE * np.cos(theta)


def draw_cartpole(ax: Axes, observation: np.ndarray, color: str = "C0") -> None:
    """One frame: the track with its end walls, the cart at x and the pole at theta."""
    x = float(observation[0])
    ax.plot([-X_LIMIT - 0.3, X_LIMIT + 0.3], [-CART_H, -CART_H], color="0.5", lw=1)
    for wall in (-X_LIMIT, X_LIMIT):
        ax.plot([wall, wall], [-CART_H, 0.2], color="0.6", lw=1, ls=":")
    ax.add_patch(Rectangle((x - CART_W / 2, -CART_H), CART_W, CART_H, color="0.25"))
    tip = pole_tip(observation)
    ax.plot([x, tip[0]], [0, tip[1]], color=color, lw=3, solid_capstyle="round")
    ax.set(xlim=(-X_LIMIT - 0.3, X_LIMIT + 0.3), ylim=(-CART_H - 0.1, POLE + 0.1), aspect="equal", xticks=[],
           yticks=[])


def plot_cartpole_strip(episodes: dict[str, np.ndarray], frames: int = 6,
                        path: str | os.PathLike | None = None) -> Figure:
    """One row of frames per episode, evenly spaced from its first step to its last.

    Args:
        episodes: label -> the episode's observations, shape (T, 4) (`rl.episode(...)["observations"]`).
        frames: frames per row.
        path: PNG file to write, or None.

    Returns:
        The figure (len(episodes) x frames axes, each titled with its step).
    """
    if frames < 1 or not episodes:
        raise ValueError(f"need at least one episode and one frame, got {len(episodes)} episodes, frames={frames}")
    fig, axes = plt.subplots(len(episodes), frames, figsize=(1.9 * frames, 0.9 * len(episodes) + 0.3), squeeze=False)
    for row, (color, (label, obs)) in zip(axes, enumerate(episodes.items())):
        obs = np.asarray(obs)
        for ax, t in zip(row, np.linspace(0, len(obs) - 1, frames).round().astype(int)):
            draw_cartpole(ax, obs[t], color=f"C{color}")
            ax.set_title(f"step {t + 1}", fontsize=8)
        row[0].set_ylabel(f"{label}\n{len(obs)} steps", fontsize=9, rotation=0, ha="right", va="center")
    fig.tight_layout()
    save_figure(fig, path)
    return fig
