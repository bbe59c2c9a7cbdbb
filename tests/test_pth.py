"""Reading torch .pth state dicts without torch and without running their pickles:
real files written by torch.save (zip and legacy layouts) read back equal; hostile
files are refused and their payload never runs."""
import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from gradscope.errors import DataError, GradscopeError
from gradscope.pth import LEGACY_MAGIC, UnsafePickleError, read_state_dict


def small_state_dict():
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(5, 2))
    sd = conv.state_dict()
    base = torch.randn(6, 5, generator=g, dtype=torch.float64)
    sd["view.t"] = base.t()  # non-contiguous, shares a storage
    sd["view.row"] = base[2]  # offset into the same storage
    sd["half"] = torch.randn(3, generator=g).half()
    sd["flags"] = torch.tensor([True, False])
    sd["scalar"] = torch.tensor(7, dtype=torch.int64)
    return sd


@pytest.mark.parametrize("zip_format", [True, False])
def test_torch_save_reads_back_equal(tmp_path, zip_format):
    sd = small_state_dict()
    path = tmp_path / "model.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(path) == zip_format
    got = read_state_dict(path)
    assert list(got) == list(sd)
    for k, v in sd.items():
        assert got[k].dtype == v.numpy().dtype and got[k].shape == tuple(v.shape), k
        np.testing.assert_array_equal(got[k], v.numpy())
        assert got[k].flags.writeable and got[k].flags.owndata


def test_reading_needs_no_torch(tmp_path):
    path = tmp_path / "m.pth"
    torch.save({"w": torch.arange(4.0)}, path)
    code = ("import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
            "from gradscope.pth import read_state_dict\n"
            f"print(read_state_dict({str(path)!r})['w'].tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[0.0, 1.0, 2.0, 3.0]"


class Payload:
    """Unpickling this would run a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').close()",))


def hostile_zip(path, obj):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")


def hostile_legacy(path, obj):
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, 1001, {"little_endian": True}, obj, []):
            pickle.dump(part, f, protocol=2)


@pytest.mark.parametrize("writer", [hostile_zip, hostile_legacy])
@pytest.mark.parametrize("payload", [Payload, EvalPayload])
def test_hostile_pth_is_refused_unrun(tmp_path, writer, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    # the payload hides among real-looking entries
    writer(path, {"conv.weight": [1.0, 2.0], "conv.bias": payload(marker)})
    with pytest.raises(UnsafePickleError, match="refused") as e:
        read_state_dict(path)
    assert isinstance(e.value, GradscopeError)
    assert "system" in str(e.value) or "eval" in str(e.value)  # names what it refused
    assert not marker.exists()
    # proof that the file is armed: a plain unpickler would have run it
    assert "pwned" in pickle.dumps(payload(marker)).decode("latin-1")


def test_malformed_files_give_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError):
        read_state_dict(junk)
    notdict = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], notdict)
    with pytest.raises(DataError, match="state_dict"):
        read_state_dict(notdict)
    truncated = tmp_path / "short.pth"
    torch.save({"w": torch.zeros(100)}, truncated, _use_new_zipfile_serialization=False)
    truncated.write_bytes(truncated.read_bytes()[:-40])
    with pytest.raises(DataError, match="storage"):
        read_state_dict(truncated)


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        files = {n: z.read(n) for n in z.namelist()}
    name = next(n for n in files if n.endswith("data.pkl"))
    files[name] = files[name].replace(b"K\x04\x85", b"K\x09\x85")  # size (4,) -> (9,)
    path = tmp_path / "bad.pth"
    with zipfile.ZipFile(path, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(DataError, match="past its storage"):
        read_state_dict(path)
