"""The image container: byte round trip, atomic write, checksum/truncation/magic refusal."""

import numpy as np
import pytest

from nvnmd.errors import CorruptFileError
from nvnmd.image import Image


def _image():
    return Image(profile="nvq1", meta={"a": 1, "nested": {"b": [1, 2]}},
                 sections={"x": np.arange(7, dtype=np.int32), "y": np.ones((2, 3), dtype=np.int64) * -5,
                           "z": np.linspace(0, 1, 3)})


def test_round_trip(tmp_path):
    img = _image()
    path = tmp_path / "m.nvq"
    img.write(path)
    back = Image.read(path)
    assert back.profile == "nvq1" and back.meta == img.meta
    for k, v in img.sections.items():
        np.testing.assert_array_equal(back.sections[k], v)
        assert back.sections[k].dtype == v.dtype
    assert back.digest() == img.digest()
    assert [p.name for p in tmp_path.iterdir()] == ["m.nvq"]  # no temporary left behind


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "empty"])
def test_damaged_images_refused(damage):
    raw = bytearray(_image().to_bytes())
    if damage == "flip":
        raw[40] ^= 1
    elif damage == "truncate":
        raw = raw[:-7]
    elif damage == "magic":
        raw[:8] = b"NOTANIMG"
    else:
        raw = bytearray()
    with pytest.raises(CorruptFileError):
        Image.from_bytes(bytes(raw))


def test_unknown_profile_refused():
    import nvnmd.sim
    from nvnmd.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="profile 'nope'"):
        nvnmd.sim.load(Image(profile="nope", meta={}))
