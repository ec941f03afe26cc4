"""Training precision: auto picks per capability, bf16 trains, fp32 is the plain fp32 loop bit for bit."""
import pytest
import torch
from fakes import small_cnn
from torch import nn

from pystatsml_tl import load_data, train_val_model
from pystatsml_tl import precision as precision_module
from pystatsml_tl.precision import auto_precision, resolve_precision
from pystatsml_tl.pretraining import pretraining_precision
from pystatsml_tl.training.loop import epoch_seed


@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx2", "avx512f"}, "fp32"),  # no bf16 units: bf16 runs emulated, slower
    ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),  # AVX-512 BF16 without AMX: bf16 measured faster
    ({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}, "fp32"),  # AMX: bf16 extraction measured no faster
    (set(), "fp32"),  # flags unknown
])
def test_auto_picks_by_the_cpus_bf16_units_and_bad_names_are_refused(monkeypatch, flags, expected):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset(flags))
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert auto_precision(torch.device("cuda")) == "bf16"  # as the loop always trained on GPUs
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    with pytest.raises(ValueError, match=r"^precision='fp16': expected auto \| fp32 \| bf16$"):
        resolve_precision("fp16", torch.device("cpu"))


def test_a_bad_precision_is_refused_before_any_epoch():
    data = load_data("synthetic", batch_size=50, train_subset=100, test_subset=50, seed=0)
    with pytest.raises(ValueError, match="^precision='half'"):  # before any epoch
        train_val_model(small_cnn(0), nn.CrossEntropyLoss(), torch.optim.SGD(small_cnn(0).parameters(), lr=0.1),
                        data, 1, device="cpu", precision="half", progress=False)


def test_bf16_training_lowers_the_loss_and_keeps_fp32_weights():
    data = load_data("synthetic", batch_size=50, train_subset=400, test_subset=100, seed=0)
    model = small_cnn(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _, losses, accuracies = train_val_model(model, nn.CrossEntropyLoss(), optimizer, data, 4, device="cpu", seed=0,
                                            progress=False, precision="bf16")
    assert losses["train"][-1] < 0.8 * losses["train"][0], losses["train"]
    assert max(accuracies["val"]) > 0.2  # chance: 0.1
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s.dtype == torch.float32 for state in optimizer.state.values() for s in state.values())


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_fp32_training_is_the_plain_fp32_loop_bit_for_bit(monkeypatch, precision):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2"}))  # where auto means fp32
    data = load_data("synthetic", batch_size=50, train_subset=150, test_subset=50, seed=0)
    packaged, plain = small_cnn(0), small_cnn(0)
    optimizer = torch.optim.SGD(packaged.parameters(), lr=0.05, momentum=0.9)
    train_val_model(packaged, nn.CrossEntropyLoss(), optimizer, data.training_loaders(), 1, device="cpu", seed=3,
                    progress=False, precision=precision)
    # the same epoch written out: its seed, channels-last batches, fp32 forward, loss, backward, step
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.05, momentum=0.9)
    plain.to(memory_format=torch.channels_last).train()
    torch.manual_seed(epoch_seed(3, 0))
    for x, y in data["train"]:
        loss = nn.functional.cross_entropy(plain(x.contiguous(memory_format=torch.channels_last)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    expected = plain.state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in packaged.state_dict().items())


def test_pretraining_on_a_cpu_stays_fp32_where_auto_would_pick_bf16(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert pretraining_precision("cpu") == "fp32"  # the arithmetic the bundled backbone was trained in
