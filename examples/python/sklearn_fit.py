"""scikit-learn example: fit a classifier on a generated data set and report its accuracy.

Run: mercato exec examples/python/sklearn_fit.py [SAMPLES=600]
Writes /output/model.json. Deterministic: every random_state is fixed.
"""

import json
import sys

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

samples = int(sys.argv[1]) if len(sys.argv) > 1 else 600
X, y = make_classification(n_samples=samples, n_features=12, n_informative=6, random_state=7)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=7)
models = {
    "logistic": LogisticRegression(max_iter=500),
    "tree": DecisionTreeClassifier(max_depth=5, random_state=7),
}
report = {}
for name, model in models.items():
    model.fit(X_train, y_train)
    report[name] = {"accuracy": round(float(model.score(X_test, y_test)), 6)}
report["logistic"]["coef_l1"] = round(float(abs(models["logistic"].coef_).sum()), 6)
with open("/output/model.json", "w") as f:
    json.dump(report, f, sort_keys=True, indent=1)
print(json.dumps(report, sort_keys=True))
