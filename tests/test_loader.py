import pytest
import torch

from lr_lightning.data.loader import InMemoryBatchLoader


def _rows(loader: InMemoryBatchLoader) -> list[int]:
    return [int(v) for (batch,) in loader for v in batch[:, 0]]


def test_unshuffled_batches_are_contiguous_views() -> None:
    x = torch.arange(20.0).reshape(10, 2)
    loader = InMemoryBatchLoader(x, batch_size=4)
    batches = [b for (b,) in loader]
    assert len(loader) == len(batches) == 3
    assert [len(b) for b in batches] == [4, 4, 2]
    assert batches[0].data_ptr() == x.data_ptr()  # a view, not a copy
    torch.testing.assert_close(torch.cat(batches), x)


def test_shuffle_is_a_function_of_seed_and_epoch() -> None:
    x = torch.arange(100.0)[:, None]
    a = InMemoryBatchLoader(x, batch_size=7, shuffle=True, seed=3)
    b = InMemoryBatchLoader(x, batch_size=7, shuffle=True, seed=3)
    first = _rows(a)
    assert sorted(first) == list(range(100))
    assert first != list(range(100))
    assert _rows(b) == first
    a.set_epoch(1)
    second = _rows(a)
    assert second != first and sorted(second) == list(range(100))
    b.set_epoch(1)  # a resumed run at epoch 1 sees the same batches
    assert _rows(b) == second


def test_shards_are_disjoint_and_equal_sized() -> None:
    x = torch.arange(103.0)[:, None]
    shards = [InMemoryBatchLoader(x, batch_size=8, shuffle=True, seed=0, rank=r, world_size=2) for r in range(2)]
    rows = [_rows(s) for s in shards]
    assert len(rows[0]) == len(rows[1]) == 51
    assert len(shards[0]) == len(shards[1])
    assert not set(rows[0]) & set(rows[1])


def test_drop_last_and_bad_arguments() -> None:
    x = torch.zeros(10, 1)
    assert len(InMemoryBatchLoader(x, batch_size=4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        InMemoryBatchLoader(x, batch_size=0)
    with pytest.raises(ValueError, match="same number of rows"):
        InMemoryBatchLoader(x, torch.zeros(9, 1), batch_size=2)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_evaluation_shards_cover_every_row_once(world_size: int) -> None:
    x = torch.arange(103.0)[:, None]
    shards = [
        InMemoryBatchLoader(x, batch_size=8, rank=r, world_size=world_size, equal_shards=False)
        for r in range(world_size)
    ]
    rows = [row for shard in shards for row in _rows(shard)]
    assert rows == list(range(103))  # rank order is row order: predictions gathered by rank line up
    sizes = [shard.rows_per_rank for shard in shards]
    assert max(sizes) - min(sizes) <= 1
