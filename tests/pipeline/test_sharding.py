"""Per-rank sharding without Lightning's sampler injection: token buckets split disjointly with
equal step counts for training, every evaluation item on exactly one rank, reshuffled per epoch."""

import pytest
import torch

from attnlab.pipeline.data.loaders import eval_sampler, train_items
from attnlab.pipeline.data.translation import TokenBuckets


class FakeTrainer:
    def __init__(self, rank, world):
        self.global_rank, self.world_size = rank, world


LENGTHS = [(i * 7) % 23 + 3 for i in range(101)]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_training_buckets_are_disjoint_shares_with_equal_steps(world):
    full = TokenBuckets(LENGTHS, 64, shuffle=True, seed=5)
    shards = [TokenBuckets(LENGTHS, 64, shuffle=True, seed=5, rank=r, world=world) for r in range(world)]
    for s in shards:
        s.set_epoch(3)
    full.set_epoch(3)
    batches = [list(s) for s in shards]
    assert len({len(b) for b in batches}) == 1 and all(len(b) == len(s) for b, s in zip(batches, shards))
    seen = [tuple(b) for part in batches for b in part]
    assert set(seen) == {tuple(b) for b in full}  # all of the epoch's batches ...
    assert len(seen) - len(set(seen)) == (-len(full.batches)) % world  # ... and only the padding repeats
    for a in range(world):
        for b in range(a + 1, world):
            # disjoint apart from the wrapped-round padding at the end
            assert not set(map(tuple, batches[a][:-1])) & set(map(tuple, batches[b][:-1]))


def test_training_order_follows_the_epoch_and_the_seed():
    s = TokenBuckets(LENGTHS, 64, shuffle=True, seed=1, rank=0, world=2)
    s.set_epoch(0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first
    s.set_epoch(0)
    assert list(s) == first  # a resumed epoch replays the same order


@pytest.mark.parametrize("world", [2, 3, 7])
def test_evaluation_buckets_cover_every_sentence_once(world):
    shards = [TokenBuckets(LENGTHS, 64, shuffle=False, rank=r, world=world, pad=False) for r in range(world)]
    items = [i for s in shards for b in s for i in b]
    assert sorted(items) == list(range(len(LENGTHS)))
    assert all(len(s) >= 1 for s in shards)  # every rank runs the evaluation loop (its epoch end gathers)


def test_few_evaluation_batches_are_split_so_every_rank_has_one():
    shards = [TokenBuckets([5, 5, 5, 5], 1000, shuffle=False, rank=r, world=3, pad=False) for r in range(3)]
    assert [len(s) for s in shards] == [1, 1, 1]
    assert sorted(i for s in shards for b in s for i in b) == [0, 1, 2, 3]


@pytest.mark.parametrize("size,world", [(10, 3), (7, 4), (16, 2)])
def test_vision_evaluation_never_counts_an_image_twice(size, world):
    data = list(range(size))
    shares = [list(eval_sampler(data, FakeTrainer(r, world))) for r in range(world)]
    assert sorted(i for s in shares for i in s) == data


def test_vision_training_shares_are_equal_and_keyed_by_epoch_on_any_number_of_ranks():
    data = list(range(11))
    shares = []
    for rank in range(3):
        items, sampler = train_items(data, FakeTrainer(rank, 3), seed=0)
        sampler.set_epoch(2)
        shares.append([items[key] for key in sampler])
        assert {epoch for epoch, _ in sampler} == {2}  # the key an item's augmentation is seeded from
    assert len({len(s) for s in shares}) == 1 and set(i for s in shares for i in s) == set(data)
    items, alone = train_items(data, None, 0)
    assert sorted(items[key] for key in alone) == data and eval_sampler(data, FakeTrainer(0, 1)) is None


def test_an_items_augmentation_follows_its_key_and_leaves_the_callers_stream_alone():
    items, _ = train_items(_Noise(), None, seed=7)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert torch.equal(items[(1, 4)], items[(1, 4)]) and not torch.equal(items[(1, 4)], items[(2, 4)])
    assert torch.equal(torch.get_rng_state(), before)


class _Noise(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        return torch.rand(3)
