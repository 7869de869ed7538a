"""One configuration of a scikit-learn parameter sweep (a task of `mercato map`).

    sweep_task.py MODEL PARAM=VALUE ...     e.g.  sweep_task.py tree max_depth=4 min_samples_leaf=2

Fits MODEL with the given hyper-parameters on a fixed generated data set (every random_state
is pinned, so the task is deterministic and auditable) and prints one JSON line with the
configuration and its test accuracy; the same line goes to /output/score.json.
"""

import json
import sys

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

MODELS = {"logistic": LogisticRegression, "tree": DecisionTreeClassifier, "knn": KNeighborsClassifier}


def parse(value: str) -> object:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


model_name = sys.argv[1] if len(sys.argv) > 1 else "tree"
params = {k: parse(v) for k, v in (arg.split("=", 1) for arg in sys.argv[2:])}
if model_name == "tree":
    params.setdefault("random_state", 7)
if model_name == "logistic":
    params.setdefault("max_iter", 500)
X, y = make_classification(n_samples=400, n_features=10, n_informative=5, random_state=7)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=7)
model = MODELS[model_name](**params).fit(X_train, y_train)
line = json.dumps({"model": model_name, "params": {k: v for k, v in params.items() if k not in ("random_state", "max_iter")},
                   "accuracy": round(float(model.score(X_test, y_test)), 6)}, sort_keys=True)
with open("/output/score.json", "w") as f:
    f.write(line + "\n")
print(line)
