"""Accuracy as an `evaluate` metric module, shipped with the project.

`evaluate.load("accuracy")` fetches its script from the Hugging Face Hub, which is
unreachable offline; `evaluate.load("<this folder>")` loads this file instead and gives
the same interface (add_batch / compute). Plain numpy, so scikit-learn is not needed.
"""

import datasets
import evaluate
import numpy as np


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Fraction of predictions equal to the reference label.",
            citation="",
            inputs_description="predictions, references: integer class ids of equal length.",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if predictions.size == 0:
            raise ValueError("accuracy of an empty evaluation set is undefined")
        return {"accuracy": float((predictions == references).mean())}
