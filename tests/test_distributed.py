"""Data-parallel training on CPU: gloo, two worker processes started by the elastic launcher."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from ddp_functions import fail_on_rank_one, train_without_batchnorm

from pystatsml_tl.distributed import WorkerFailedError, launch, rank_batches
from pystatsml_tl.runs.experiments import run_experiment

SMALL = dict(dataset="synthetic", epochs=2, batch_size=20, train_subset=100, test_subset=40, val_fraction=0.2,
             progress=False, device="cpu")


@pytest.mark.parametrize("n, batch, world", [(100, 20, 2), (103, 20, 2), (10, 4, 3), (7, 10, 4)])
def test_each_epochs_rank_shards_are_disjoint_and_cover_the_data(n, batch, world):
    torch.manual_seed(0)
    shards = []
    for rank in range(world):
        torch.manual_seed(5)  # every rank draws the same permutation
        shards.append(list(rank_batches(n, batch, True, rank, world)))
    everything = torch.cat([piece for shard in shards for piece in shard])
    assert sorted(everything.tolist()) == list(range(n))  # disjoint and covering
    torch.manual_seed(5)
    whole = list(rank_batches(n, batch, True))
    for i, global_batch in enumerate(whole):  # each global batch is shared out, not reshuffled
        pieces = [shard[i] for shard in shards if i < len(shard)]
        assert torch.equal(torch.cat(pieces), global_batch)


def test_frozen_extractor_in_two_processes_gives_the_one_process_history(cache_dir):
    params = SMALL | {"experiment": "extractor-sgd", "weights": "none", "feature_cache": False}
    one = run_experiment(params, log_interval=None)
    two = run_experiment(params | {"nproc_per_node": 2}, log_interval=None)
    for phase in one.losses:
        assert two.losses[phase] == pytest.approx(one.losses[phase], rel=1e-5)
        assert two.accuracies[phase] == pytest.approx(one.accuracies[phase], abs=1e-9)
    assert two.test.accuracy == one.test.accuracy
    assert torch.allclose(two.model.fc.weight, one.model.fc.weight, atol=1e-5)


def test_model_without_batchnorm_in_two_processes_gives_the_one_process_history():
    one = train_without_batchnorm()
    two = launch(train_without_batchnorm, 2)
    for phase in one[0]:
        assert two[0][phase] == pytest.approx(one[0][phase], rel=1e-5)
        assert two[1][phase] == pytest.approx(one[1][phase], abs=1e-9)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(one[2], two[2]))


def test_batchnorm_model_trains_above_chance_in_two_processes(cache_dir):
    # fp32: the threshold was set on fp32 arithmetic (bf16 under two processes: the extractor test above)
    result = run_experiment(SMALL | {"experiment": "finetune-adam", "weights": "none", "epochs": 2,
                                     "train_subset": 300, "nproc_per_node": 2, "precision": "fp32"},
                            log_interval=None)
    assert result.test.accuracy > 0.2 and len(result.losses["train"]) == 2


def test_a_failing_rank_ends_the_run_with_its_rank_and_error_in_bounded_time():
    started = time.time()
    with pytest.raises(WorkerFailedError) as info:
        launch(fail_on_rank_one, 2)
    assert str(info.value) == "rank 1 failed: RuntimeError: simulated worker failure"
    assert time.time() - started < 120


def test_bad_nproc_per_node_is_refused_before_work():
    from pystatsml_tl.runs.parameters import validate_parameters

    for bad in ("0", "two", -1):
        with pytest.raises(ValueError, match="^nproc_per_node=.*expected a positive integer or auto"):
            validate_parameters({"nproc_per_node": bad})
    assert validate_parameters({"nproc_per_node": 2})["nproc_per_node"] == "2"


RUN = """
import json, sys
from pystatsml_tl.runs.experiments import run_experiment
if __name__ == "__main__":
    result = run_experiment(json.loads(sys.argv[1]), log_interval=1)
    print("HISTORY", json.dumps(result.losses))
"""


def test_resume_after_a_kill_under_ddp_continues_from_the_last_epoch(tmp_path, cache_dir):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    params = SMALL | {"experiment": "finetune-sgd", "arch": "mobilenet_v3_small", "weights": "none", "epochs": 3,
                      "nproc_per_node": 2}
    killed = dict(params, output_dir=str(tmp_path / "killed"))
    process = subprocess.Popen([sys.executable, str(script), json.dumps(killed)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    checkpoint = tmp_path / "killed" / "checkpoint-finetune.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both workers, mid-run
    process.wait()
    assert checkpoint.exists()
    resumed = subprocess.run([sys.executable, str(script), json.dumps(killed)], capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from" in resumed.stdout
    clean = subprocess.run([sys.executable, str(script), json.dumps(params)], capture_output=True, text=True,
                           timeout=600)
    history = [json.loads(r.stdout.split("HISTORY ")[1]) for r in (resumed, clean)]
    assert history[0]["train"] == pytest.approx(history[1]["train"], rel=1e-5)
    assert not checkpoint.exists() or not (tmp_path / "killed" / "metrics.json").exists()


def test_torchrun_starts_the_workers_and_rank_0_writes_the_outputs(tmp_path, cache_dir):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "pystatsml_tl.worker", "--profile", "smoke", "--experiment", "extractor-adam",
                           "--set", "weights=none", "--set", "train_subset=100", "--set", "test_subset=40",
                           "--set", "epochs=2", "--set", "device=cpu", "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]["train_loss"]) == 2 and len(metrics["test_predictions"]) == 40
    assert done.stdout.count("epoch 1/1") == 1  # only rank 0 reports
