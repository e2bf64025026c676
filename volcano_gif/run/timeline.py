"""The run report's picture: a bar per task over wall-clock time, and core-seconds by phase.

Tasks on one node that never overlap share a lane; start-up and rendering are
shaded differently, coloured by node, the assembly as its own bar; beside it,
core-seconds by node and phase (seaborn). pandas and seaborn are imported
inside the functions that draw: never by a render task.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from volcano_gif.files import write_atomically

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

#: The timeline picture's size in pixels.
TIMELINE_SIZE = (1200, 600)
#: The bars' colours by node.
Palette = dict[str, Any]


def lanes(table: pd.DataFrame) -> list[str]:
    """A lane for each task: tasks on one node that never overlap share a lane.

    So 360 one-frame tasks on 4 cores draw as 4 lanes of 90 bars each: one
    bar per task, with the cores' idle gaps and start-ups in plain sight.
    """
    ends: dict[str, list[float]] = {}
    names = []
    for node, start, end in zip(table["node"], table["start_s"], table["end_s"], strict=True):
        lane_ends = ends.setdefault(node, [])
        free = next((k for k, last in enumerate(lane_ends) if last <= start + 0.05), None)
        if free is None:
            lane_ends.append(end)
            free = len(lane_ends) - 1
        lane_ends[free] = end
        names.append(f"{node} #{free + 1}")
    return names


def draw_timeline(
    table: pd.DataFrame,
    title: str,
    assembly: tuple[float, float] | None,
    footer: str,
    target: Path,
) -> None:
    """Write the picture: ``assembly`` is when it began and ended, in seconds since submission."""
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nodes = sorted(table["node"].unique())
    palette = dict(zip(nodes, sns.color_palette("colorblind", len(nodes)), strict=True))
    with sns.axes_style("whitegrid"):
        figure = Figure(figsize=(TIMELINE_SIZE[0] / 100, TIMELINE_SIZE[1] / 100), dpi=100)
        FigureCanvasAgg(figure)
        timeline, phases = figure.subplots(1, 2, width_ratios=[3, 1])
        _draw_tasks(timeline, table, palette, assembly)
        timeline.set_title(title, fontsize=11, pad=24)
        _draw_legend(timeline, palette)
        _draw_phases(phases, table)
        figure.text(0.01, 0.012, footer, fontsize=8, color="0.25")
        figure.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.2, wspace=0.22)
        write_atomically(target, lambda temporary: figure.savefig(temporary, format="png"))


def _draw_tasks(
    timeline: Axes, table: pd.DataFrame, palette: Palette, assembly: tuple[float, float] | None
) -> None:
    """A bar per task in its lane, start-up lighter than rendering; the assembly below."""
    lane_of = lanes(table)
    lane_names = sorted(
        set(lane_of), key=lambda name: (name.split(" #")[0], int(name.split(" #")[1]))
    )
    row_of = {name: row for row, name in enumerate(lane_names)}
    rows = [row_of[name] for name in lane_of]
    colours = [palette[node] for node in table["node"]]
    start, first, end = (table[c].to_numpy(float) for c in ("start_s", "first_frame_s", "end_s"))
    # A thin white edge keeps back-to-back tasks apart.
    bars: dict[str, Any] = {"height": 0.8, "color": colours, "edgecolor": "white", "linewidth": 0.3}
    timeline.barh(rows, first - start, left=start, alpha=0.3, **bars)
    timeline.barh(rows, end - first, left=first, **bars)
    labels = list(lane_names)
    if assembly is not None:
        began, ended = assembly
        timeline.barh(len(lane_names), ended - began, left=began, height=0.8, color="0.3")
        labels.append("assembly")
    timeline.set_yticks(range(len(labels)), labels, fontsize=8)
    timeline.set_ylim(-0.7, len(labels) - 0.3)
    timeline.invert_yaxis()
    timeline.set_xlim(left=0)
    timeline.set_xlabel("seconds since submission")


def _draw_legend(timeline: Axes, palette: Palette) -> None:
    """A swatch of each colour the tasks' bars have; one host's (a local run's) unnamed."""
    from matplotlib.patches import Patch

    handles = [
        Patch(color=colour, alpha=alpha, label=f"{node}: {phase}" if len(palette) > 1 else phase)
        for node, colour in palette.items()
        for phase, alpha in (("start-up", 0.3), ("rendering", 1.0))
    ]
    timeline.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncols=6,
        fontsize=8,
        frameon=False,
    )


def _draw_phases(phases: Axes, table: pd.DataFrame) -> None:
    """Core-seconds by node, start-up beside rendering."""
    import seaborn as sns

    by_node = table.groupby("node")[["startup_s", "render_s"]].sum()
    by_node = by_node.rename(columns={"startup_s": "start-up", "render_s": "rendering"})
    by_phase = by_node.reset_index().melt(id_vars="node", var_name="phase", value_name="seconds")
    sns.barplot(
        data=by_phase, y="node", x="seconds", hue="phase", ax=phases, palette=["0.75", "0.35"]
    )
    phases.set_xlabel("core-seconds")
    phases.set_ylabel("")
    phases.set_title("core time by phase", fontsize=11, pad=24)
    phases.legend(fontsize=8)
