"""Write the example data files under ``data/`` (committed; rerun to regenerate them byte for byte).

* ``data/houses.csv``: 200 synthetic houses, a linear price model with noise (regression example).
* ``data/iris.csv``: scikit-learn's bundled iris table with the species as strings (classification example).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"


def write_houses(path: Path, n_rows: int = 200, seed: int = 7) -> None:
    """Write houses whose price (thousands) = 1.8 * area_m2 + 12 * rooms - 0.9 * age_years + 40 + N(0, 15^2)."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(40, 220, n_rows).round(1)
    rooms = rng.integers(1, 7, n_rows)
    age = rng.integers(0, 80, n_rows)
    price = (1.8 * area + 12 * rooms - 0.9 * age + 40 + rng.normal(0, 15, n_rows)).round(1)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["area_m2", "rooms", "age_years", "price_k"])
        writer.writerows(zip(area, rooms, age, price, strict=True))


def write_iris(path: Path) -> None:
    """Write the iris measurements (cm) and the species name of each of the 150 flowers."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "species"])
        for row, label in zip(iris.data, iris.target, strict=True):
            writer.writerow([*(f"{v:.1f}" for v in row), iris.target_names[label]])


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    write_houses(DATA / "houses.csv")
    write_iris(DATA / "iris.csv")
    print(f"wrote {DATA / 'houses.csv'} and {DATA / 'iris.csv'}")
