"""What an array task runs: ``python volcano.py --array-task K`` renders its frames.

Everything here is imported by a render task, which is why none of it imports
pandas, seaborn, imageio, tqdm, ``matplotlib.figure`` or the rest of the
package (``pyproject.toml``'s import-linter contracts hold it to that):
the 3D scene (``scene``), the renderer (``render``, ``png``), the frame check
(``frames``), the grid (``data``), the task's timing file (``task_timing``)
and the ``volcano.py`` command itself (``command``).
"""
