# The original recipe's renderer, reproduced faithfully as the benchmark's
# baseline: its imports (seaborn and Axes3D unused), pandas for the CSV, the
# categorical column codes (which garble the surface: see the brief), pyplot
# state, one process per frame. Do not "fix" it: it is the thing we measure.
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from mpl_toolkits.mplot3d import Axes3D
import pandas as pd
import seaborn as sns

n = int(sys.argv[1])

data = pd.read_csv("data/volcano.csv")
df = data.unstack().reset_index()
df.columns = ["X", "Y", "Z"]
df["X"] = pd.Categorical(df["X"])
df["X"] = df["X"].cat.codes

fig = plt.figure()
ax = fig.add_subplot(111, projection="3d")
ax.plot_trisurf(df["Y"], df["X"], df["Z"], cmap=plt.cm.viridis, linewidth=0.2)
ax.view_init(30, 45 + n)
plt.axis("off")
plt.savefig("images/image" + str(n) + ".png")
