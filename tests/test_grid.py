"""The run list: seeds, grids, shards and run folders."""
import pytest

from pystatsml_tl.runs.grid import expand_runs, parse_grid, parse_seeds, parse_shard, shard_runs


def test_seeds_count_or_list():
    assert parse_seeds("5") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7] and parse_seeds("3,") == [3]
    for bad in ("0", "a,b", "1,1", "-1,2"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_grid_values_are_typed_by_the_parameter():
    grid = parse_grid(["image_size=32,128", "normalize=tutorial,imagenet", "augment=true,false"])
    assert grid == {"image_size": [32, 128], "normalize": ["tutorial", "imagenet"], "augment": [True, False]}
    for bad, message in ((["image_size=32,big"], "image_size='big': expected int"),
                         (["colour=red"], "unknown parameter 'colour'"), (["seed=1,2"], "--seeds"),
                         (["epochs=1,1"], "repeated"), (["epochs"], "expected NAME=V1,V2"),
                         (["epochs=1", "epochs=2"], "given twice")):
        with pytest.raises(ValueError, match=message):
            parse_grid(bad)


def test_runs_are_the_cartesian_product_in_a_stable_order_with_named_folders():
    runs = expand_runs(["extractor-sgd", "extractor-adam"], {"image_size": [32, 128], "normalize": ["imagenet"]},
                       [0, 1])
    assert len(runs) == 8 and runs == expand_runs(["extractor-sgd", "extractor-adam"],
                                                  {"image_size": [32, 128], "normalize": ["imagenet"]}, [0, 1])
    assert runs[0].folder == "extractor-sgd/image_size=32,normalize=imagenet/seed-0"
    assert runs[-1].folder == "extractor-adam/image_size=128,normalize=imagenet/seed-1"
    assert expand_runs(["scratch"], {}, [2])[0].folder == "scratch/seed-2"


@pytest.mark.parametrize("count", [1, 2, 3, 7, 20])
def test_shards_are_disjoint_and_cover_the_runs(count):
    runs = expand_runs(["a", "b", "c"], {"lr": [0.1, 0.01]}, [0, 1, 2])
    shards = [shard_runs(runs, i, count) for i in range(1, count + 1)]
    assert [r for shard in shards for r in shard] == runs  # in order, each run once


def test_shard_syntax():
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/2", "3/2", "2", "a/b", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
