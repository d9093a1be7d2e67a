"""FileDataModule: CSV/.npy/.npz reading, splits, string labels, and every bad input named precisely."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from lr_lightning.data import FileDataModule
from lr_lightning.errors import InputError
from tests.helpers import CONFIGS, REPO, run_cli, write_csv


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 3.0
    return write_csv(tmp_path / "table.csv", ["a", "b", "c", "y"], np.column_stack([x, y]).tolist())


def test_csv_columns_default_and_by_name(table: Path) -> None:
    default = FileDataModule(str(table))
    assert default.feature_names == ["a", "b", "c"] and default.target_names == ["y"]
    chosen = FileDataModule(str(table), targets=["y", "a"], features=["c"])
    assert chosen.feature_names == ["c"] and chosen.num_targets == 2
    features, targets = chosen.split_tensors("train")
    assert features.shape == (35, 1) and targets.shape == (35, 2)


def test_same_seed_same_split_and_fractions_of_zero_use_all_rows(table: Path) -> None:
    first, second = FileDataModule(str(table), seed=3), FileDataModule(str(table), seed=3)
    for split in ("train", "val", "test"):
        torch.testing.assert_close(first.split_tensors(split)[0], second.split_tensors(split)[0])
    everything = FileDataModule(str(table), val_fraction=0.0, test_fraction=0.0)
    assert all(len(everything.split_tensors(split)[0]) == 50 for split in ("train", "val", "test"))


def test_explicit_split_files_and_predict_file(tmp_path: Path, table: Path) -> None:
    val = write_csv(tmp_path / "val.csv", ["a", "b", "c", "y"], [[1, 2, 3, 4], [5, 6, 7, 8]])
    predict = write_csv(tmp_path / "new.csv", ["c", "b", "a"], [[0.5, 0.25, 0.125]])  # no target, other order
    module = FileDataModule(str(table), val_path=str(val), predict_path=str(predict), test_fraction=0.0)
    assert len(module.split_tensors("train")[0]) == 50
    torch.testing.assert_close(module.split_tensors("val")[0], torch.tensor([[1.0, 2, 3], [5, 6, 7]]))
    assert len(module.split_tensors("test")[0]) == 50  # no test file: the training rows
    torch.testing.assert_close(module.predict_features(), torch.tensor([[0.125, 0.25, 0.5]]))


def test_npy_and_npz(tmp_path: Path) -> None:
    array = np.arange(40.0).reshape(10, 4)
    np.save(tmp_path / "table.npy", array)
    module = FileDataModule(str(tmp_path / "table.npy"), val_fraction=0.0, test_fraction=0.0, shuffle=False)
    assert module.feature_names == ["c0", "c1", "c2"] and module.target_names == ["c3"]
    np.savez(tmp_path / "table.npz", X=array[:, :3], y=array[:, 3])
    module = FileDataModule(str(tmp_path / "table.npz"), val_fraction=0.0, test_fraction=0.0)
    assert module.num_features == 3 and module.num_targets == 1
    torch.testing.assert_close(module.split_tensors("train")[1][:, 0], torch.tensor(array[:, 3], dtype=torch.float32))


def test_string_labels_map_to_sorted_class_names(tmp_path: Path) -> None:
    rows = [[i, 2 * i, ["cat", "dog", "bird"][i % 3]] for i in range(30)]
    module = FileDataModule(str(write_csv(tmp_path / "pets.csv", ["u", "v", "kind"], rows)), task="classification")
    assert module.class_names == ["bird", "cat", "dog"] and module.num_classes == 3
    _, labels = module.split_tensors("train")
    assert labels.dtype == torch.int64 and set(labels.tolist()) == {0, 1, 2}


def bad_inputs(tmp_path: Path) -> list[tuple[str, dict, str]]:
    """(file, extra arguments, expected message) for each bad input of the issue."""
    cases = []

    def case(name: str, text: str, message: str, **kwargs: object) -> None:
        (tmp_path / name).write_text(text)
        cases.append((str(tmp_path / name), kwargs, message))

    case("nan.csv", "a,b,y\n1,2,3\n4,nan,6\n", r"nan.csv, row 3, column 'b': nan is not a finite number")
    case("inf.csv", "a,b,y\n1,2,3\n4,5,inf\n", r"inf.csv, row 3, column 'y': inf is not a finite number")
    case("empty.csv", "", r"empty.csv: the file is empty")
    case("header.csv", "a,b,y\n", r"header.csv: the file has a header but no data rows")
    case("text.csv", "a,b,y\n1,2,3\n4,five,6\n", r"text.csv, row 3, column 'b': 'five' is not a number")
    case("ragged.csv", "a,b,y\n1,2,3\n4,5\n", r"ragged.csv, row 3: 2 cells but the header names 3 columns")
    case("dup.csv", "a,a,y\n1,2,3\n", r"dup.csv: duplicate column names \['a'\]")
    case("cols.csv", "a,b,y\n1,2,3\n4,5,6\n", r"cols.csv: no target column 'price'; the columns are", targets="price")
    np.save(tmp_path / "cube.npy", np.zeros((4, 3, 2)))
    cases.append((str(tmp_path / "cube.npy"), {}, r"cube.npy: expected a 2-D array"))
    np.save(tmp_path / "objects.npy", np.array([[1, "a"], [2, "b"]], dtype=object), allow_pickle=True)
    cases.append((str(tmp_path / "objects.npy"), {}, r"objects.npy: cannot be read without unpickling"))
    np.savez(tmp_path / "lengths.npz", X=np.zeros((5, 2)), y=np.zeros(4))
    cases.append((str(tmp_path / "lengths.npz"), {}, r"lengths.npz: 'X' has 5 rows but 'y' has 4"))
    cases.append((str(tmp_path / "missing.csv"), {}, r"missing.csv: no such file"))
    return cases


def test_each_bad_input_names_file_row_and_column(tmp_path: Path) -> None:
    for path, kwargs, message in bad_inputs(tmp_path):
        with pytest.raises(InputError, match=message):
            _ = FileDataModule(path, val_fraction=0.0, test_fraction=0.0, **kwargs).num_features


def test_predict_file_without_a_feature_column(tmp_path: Path, table: Path) -> None:
    predict = write_csv(tmp_path / "new.csv", ["a", "b"], [[1, 2]])
    with pytest.raises(InputError, match=r"new.csv: no feature column 'c'; the model takes \['a', 'b', 'c'\]"):
        _ = FileDataModule(str(table), predict_path=str(predict)).num_features


def test_continuous_labels_for_classification(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "soft.csv", ["a", "y"], [[1, 0], [2, 0.5], [3, 1]])
    with pytest.raises(InputError, match=r"soft.csv, row 3, column 'y': label 0.5 is not an integer"):
        _ = FileDataModule(str(path), targets="y", task="classification").num_classes


def test_constant_feature_is_centred_with_a_warning(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "flat.csv", ["a", "flat", "y"], [[i, 5, 2 * i] for i in range(20)])
    module = FileDataModule(str(path), val_fraction=0.0, test_fraction=0.0)
    with pytest.warns(UserWarning, match="'flat' is constant"):
        scaling = module.scaling_statistics()
    assert scaling.feature_scale[1] == 1.0 and torch.isfinite(scaling.feature_scale).all()


@pytest.mark.slow
def test_bad_input_through_the_cli_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "broken.csv").write_text("a,b,y\n1,2,3\n4,,6\n")
    result = run_cli(
        [
            "fit",
            "--model",
            "lr_lightning.models.LinearRegression",
            "--data",
            "lr_lightning.data.FileDataModule",
            "--data.path",
            "broken.csv",
        ],
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert "lr-lightning: error: broken.csv, row 3, column 'b': '' is not a number" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_iris_csv_predicts_species_names_in_a_fresh_process(tmp_path: Path) -> None:
    config = str(CONFIGS / "logistic_csv.yaml")
    data = ["--data.init_args.path", str(REPO / "data" / "iris.csv"), "--trainer.max_epochs", "20"]
    run_cli(["fit", "--config", config, *data], cwd=tmp_path)
    checkpoint = tmp_path / "runs/logistic_csv/version_0/checkpoints/latest.ckpt"
    run_cli(["predict", "--config", config, *data, "--ckpt_path", str(checkpoint)], cwd=tmp_path)
    with (tmp_path / "runs/logistic_csv/version_0/predict_0/predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 150
    # The predicted class under the label column's own name, then the file's label and whether they agree.
    assert list(rows[0]) == ["p_setosa", "p_versicolor", "p_virginica", "species", "species_actual", "correct"]
    truth = [line.rsplit(",", 1)[1].strip() for line in (REPO / "data/iris.csv").read_text().splitlines()[1:]]
    assert [row["species_actual"] for row in rows] == truth
    assert [row["correct"] == "True" for row in rows] == [row["species"] == row["species_actual"] for row in rows]
    accuracy = np.mean([row["species"] == species for row, species in zip(rows, truth, strict=True)])
    assert accuracy > 0.9


def test_splits_are_disjoint_cover_the_file_and_scaling_uses_train_rows_only(table: Path) -> None:
    module = FileDataModule(str(table), val_fraction=0.2, test_fraction=0.2, seed=5)
    parts = [module.split_tensors(split)[0].double() for split in ("train", "val", "test")]
    assert [len(part) for part in parts] == [30, 10, 10]
    source = np.loadtxt(table, delimiter=",", skiprows=1)[:, :3]
    stacked = torch.cat(parts).numpy()
    np.testing.assert_allclose(stacked[np.lexsort(stacked.T)], source[np.lexsort(source.T)], rtol=1e-6)
    scaling = module.scaling_statistics()
    torch.testing.assert_close(scaling.feature_mean.double(), parts[0].mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scaling.feature_scale.double(), parts[0].std(0, correction=0), rtol=1e-5, atol=0)
    other = FileDataModule(str(table), val_fraction=0.2, test_fraction=0.2, seed=6)
    assert not torch.equal(other.split_tensors("val")[0], module.split_tensors("val")[0])


def test_predict_without_a_predict_file_returns_rows_in_file_order(table: Path) -> None:
    module = FileDataModule(str(table), val_fraction=0.2, test_fraction=0.2)
    source = np.loadtxt(table, delimiter=",", skiprows=1)[:, :3]
    np.testing.assert_allclose(module.predict_features().double().numpy(), source, rtol=1e-6)


def test_a_hundred_thousand_row_csv_parses_every_cell(tmp_path: Path) -> None:
    values = np.random.default_rng(0).normal(size=(100_000, 21))
    path = tmp_path / "wide.csv"
    np.savetxt(path, values, delimiter=",", fmt="%.9g", header=",".join(f"v{j}" for j in range(21)), comments="")
    module = FileDataModule(str(path), val_fraction=0.0, test_fraction=0.0, shuffle=False)
    features, targets = module.split_tensors("train")
    assert features.shape == (100_000, 20) and targets.shape == (100_000, 1)
    np.testing.assert_allclose(features.numpy(), values[:, :20].astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(targets[:, 0].numpy(), values[:, 20].astype(np.float32), rtol=1e-6)


def test_row_numbers_count_blank_lines_and_quoted_numbers_parse(tmp_path: Path) -> None:
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('a,"b",y\n"1.5",2,3\n\n4,5,6\n')
    module = FileDataModule(str(quoted), val_fraction=0.0, test_fraction=0.0, shuffle=False)
    torch.testing.assert_close(module.split_tensors("train")[0], torch.tensor([[1.5, 2.0], [4.0, 5.0]]))
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbfa,y\n1,2\n")  # the byte-order mark Excel writes is not part of the name 'a'
    assert FileDataModule(str(excel), features="a", val_fraction=0.0, test_fraction=0.0).feature_names == ["a"]
    blank = tmp_path / "blank.csv"
    blank.write_text("a,b,y\n1,2,3\n\n4,nan,6\n")
    with pytest.raises(InputError, match=r"blank.csv, row 4, column 'b': nan is not a finite number"):
        _ = FileDataModule(str(blank)).num_features


def test_numeric_labels_are_classes_sorted_by_value(tmp_path: Path) -> None:
    rows = [[i, [7, 3, 10][i % 3]] for i in range(12)]
    module = FileDataModule(str(write_csv(tmp_path / "codes.csv", ["u", "code"], rows)), task="classification")
    assert module.class_names == ["3", "7", "10"]  # by value, not as text ("10" < "3"), and no empty classes
    labels = torch.cat([module.split_tensors(split)[1] for split in ("train", "val", "test")])
    assert set(labels.tolist()) == {0, 1, 2}
    plain = write_csv(tmp_path / "plain.csv", ["u", "y"], [[i, i % 2] for i in range(10)])
    assert FileDataModule(str(plain), task="classification").class_names == ["0", "1"]


def test_class_names_are_shared_by_the_split_files(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", ["u", "kind"], [[0, "cat"], [1, "dog"], [2, "cat"]])
    val = write_csv(tmp_path / "val.csv", ["u", "kind"], [[3, "bird"], [4, "dog"]])
    module = FileDataModule(str(train), task="classification", val_path=str(val))
    assert module.class_names == ["bird", "cat", "dog"]
    assert module.split_tensors("train")[1].tolist() == [1, 2, 1]
    assert module.split_tensors("val")[1].tolist() == [0, 2]


def test_npy_is_memory_mapped_and_columns_chosen_by_name(tmp_path: Path) -> None:
    array = np.arange(30.0).reshape(10, 3)
    np.save(tmp_path / "table.npy", array)
    module = FileDataModule(str(tmp_path / "table.npy"), targets="c0", val_fraction=0.0, test_fraction=0.0)
    data = module.data
    assert module.feature_names == ["c1", "c2"] and module.target_names == ["c0"]
    assert isinstance(data.features.base, np.memmap)  # a view into the file, not a copy in memory
    np.testing.assert_array_equal(data.targets[:, 0], array[:, 0])


def test_npz_arrays_by_name_and_string_labels(tmp_path: Path) -> None:
    inputs = np.arange(12.0).reshape(6, 2)
    np.savez(tmp_path / "named.npz", inputs=inputs, kind=np.array(["b", "a", "b", "a", "b", "a"]))
    module = FileDataModule(
        str(tmp_path / "named.npz"), features="inputs", targets="kind", task="classification", val_fraction=0.0
    )
    assert module.class_names == ["a", "b"] and module.num_features == 2
    with pytest.raises(InputError, match=r"named.npz: no array named 'X_train'; the file holds 'inputs', 'kind'"):
        _ = FileDataModule(str(tmp_path / "named.npz"), features="X_train").num_features


def test_parquet_needs_pyarrow_or_reads_columns_by_name(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(InputError, match=r"table.parquet: reading Parquet files needs pyarrow"):
            _ = FileDataModule(str(path)).num_features
        return
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "kind": ["x", "y", "x"], "b": [4, 5, 6]}), path)
    module = FileDataModule(str(path), targets="kind", task="classification", val_fraction=0.0, test_fraction=0.0)
    assert module.feature_names == ["a", "b"] and module.class_names == ["x", "y"]


@pytest.mark.parametrize(
    ("name", "text", "kwargs", "message"),
    [
        ("table.xlsx", "a,y\n1,2\n", {}, r"table.xlsx: unknown file type '.xlsx'"),
        (
            "both.csv",
            "a,b,y\n1,2,3\n",
            {"features": ["a", "y"]},
            r"both.csv: column 'y' is both a feature and a target",
        ),
        ("feature.csv", "a,b,y\n1,2,3\n", {"features": ["a", "z"]}, r"feature.csv: no feature column 'z'"),
        ("label.csv", "a,y\n1,cat\n2,\n3,dog\n", {"task": "classification"}, r"label.csv, row 3, column 'y': empty"),
        ("short.csv", "a,b,y\n1,2,3\n4,5\n", {"features": ["a"]}, r"short.csv, row 3: 2 cells but the header"),
        ("noname.csv", "a,,y\n1,2,3\n", {}, r"noname.csv, row 1, column 2: empty column name"),
    ],
)
def test_more_bad_csv_input(tmp_path: Path, name: str, text: str, kwargs: dict, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=message):
        _ = FileDataModule(str(tmp_path / name), val_fraction=0.0, test_fraction=0.0, **kwargs).num_features


def test_predict_file_with_fewer_columns_than_the_training_array(tmp_path: Path) -> None:
    np.save(tmp_path / "train.npy", np.arange(20.0).reshape(5, 4))
    np.save(tmp_path / "new.npy", np.arange(4.0).reshape(2, 2))
    with pytest.raises(InputError, match=r"new.npy: no feature column 'c2'; the model takes \['c0', 'c1', 'c2'\]"):
        _ = FileDataModule(str(tmp_path / "train.npy"), predict_path=str(tmp_path / "new.npy")).num_features


def test_nan_in_an_array_names_its_row_counted_from_zero(tmp_path: Path) -> None:
    array = np.ones((5, 3))
    array[2, 1] = np.nan
    np.save(tmp_path / "holes.npy", array)
    with pytest.raises(InputError, match=r"holes.npy, row 2, column 'c1': nan is not a finite number"):
        _ = FileDataModule(str(tmp_path / "holes.npy")).num_features
    np.save(tmp_path / "new.npy", array[:, :2])
    np.save(tmp_path / "train.npy", np.ones((5, 3)))
    with pytest.raises(InputError, match=r"new.npy, row 2, column 'c1': nan"):  # the predict file, by its name
        _ = FileDataModule(str(tmp_path / "train.npy"), predict_path=str(tmp_path / "new.npy")).num_features


def test_npy_stays_on_disk_and_fits_like_in_memory(tmp_path: Path) -> None:
    """A .npy is memory-mapped and read batch by batch (issue 8); the fit reaches least squares either way."""
    import lightning.pytorch as pl

    from lr_lightning import least_squares
    from lr_lightning.models import LinearRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 4))
    table = np.column_stack([x, x @ np.array([1.0, -2.0, 0.5, 3.0]) + 4.0 + 0.1 * rng.normal(size=3000)])
    np.save(tmp_path / "table.npy", table.astype(np.float32))
    fits = {}
    for in_memory in (None, True):
        module = FileDataModule(
            str(tmp_path / "table.npy"), in_memory=in_memory, val_fraction=0.0, test_fraction=0.0, batch_size=3000
        )
        assert module.out_of_core is (in_memory is None)
        model = LinearRegression(
            in_features=4,
            optimality_gap=False,
            optimizer=lambda params: torch.optim.LBFGS(params, max_iter=50, line_search_fn="strong_wolfe"),
        )
        trainer = pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False)
        trainer.fit(model, datamodule=module)
        fits[in_memory] = model.coef_
    reference = least_squares(table[:, :4].astype(np.float32).astype(np.float64), table[:, 4:].astype(np.float32))
    for coef in fits.values():
        np.testing.assert_allclose(coef, reference.coef_, rtol=1e-3)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiter_reads_the_same_table_as_commas(tmp_path: Path, table: Path, delimiter: str) -> None:
    other = tmp_path / "other.csv"
    other.write_text(table.read_text().replace(",", delimiter))
    commas = FileDataModule(str(table), val_fraction=0, test_fraction=0)
    module = FileDataModule(str(other), delimiter=delimiter, val_fraction=0, test_fraction=0)
    assert module.feature_names == commas.feature_names and module.target_names == commas.target_names
    for got, expected in zip(module.split_tensors("train"), commas.split_tensors("train"), strict=True):
        torch.testing.assert_close(got, expected)


def test_delimiter_from_the_command_line(tmp_path: Path, table: Path) -> None:
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(table.read_text().replace(",", ";"))
    args = ["fit", "--model", "LinearRegression", "--data", "FileDataModule", "--data.path", str(semicolons)]
    refused = run_cli(args, cwd=tmp_path, check=False)
    assert refused.returncode == 2
    assert "set delimiter: ';' (--data.delimiter ';')" in refused.stderr.strip().splitlines()[-1]
    run_cli([*args, "--data.delimiter", ";", "--trainer.max_epochs", "1"], cwd=tmp_path)
    assert list(tmp_path.glob("runs/default/version_0/checkpoints/latest.ckpt"))


def test_class_names_fix_the_classes_and_refuse_an_unknown_label(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("x,y\n" + "".join(f"{i},{'b' if i % 2 else 'c'}\n" for i in range(8)))
    fixed = {"task": "classification", "val_fraction": 0, "test_fraction": 0}
    module = FileDataModule(str(path), class_names=["a", "b", "c"], **fixed)
    assert module.class_names == ["a", "b", "c"]
    assert module.split_tensors("train")[1].tolist() == [2 if i % 2 == 0 else 1 for i in range(8)]
    with pytest.raises(InputError, match=r"labels.csv, row 2, column 'y': label c is not one of the model's classes"):
        _ = FileDataModule(str(path), task="classification", class_names=["a", "b"]).data
