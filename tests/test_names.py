"""`mer.names`: which names may become store path components, and the messages for those that may not."""

from __future__ import annotations

import pytest

from mer.names import MAX_COMPONENT_BYTES, UnsafeNameError, printable, validate_clip_id, validate_component

SAFE = ["sub01", "EP02_01f", "s1-c2.v3", "006", "[b]s9", "Überraschung", "微表情", "a" * MAX_COMPONENT_BYTES, "x+y"]
UNSAFE = {
    "": "empty",
    "a/b": "path separator",
    "a\\b": "path separator",
    "..": "'..'",
    "a..b": "'..'",
    "a\x00b": "control character",
    "a\nb": "control character",
    "a\x7fb": "control character",
    ".hidden": "starts with a dot",
    " padded": "white space",
    "padded ": "white space",
    "_done": "reserved",
    "_anything": "reserved",
    "manifest": "reserved",
    "Clips": "reserved",
    "a" * (MAX_COMPONENT_BYTES + 1): "129 bytes",
    "é" * 65: "130 bytes",  # 65 characters, 130 bytes in UTF-8: the limit is in bytes
}


@pytest.mark.parametrize("value", SAFE)
def test_safe_names_pass_unchanged(value):
    assert validate_component("clip", value) == value


@pytest.mark.parametrize(("value", "reason"), UNSAFE.items(), ids=[repr(v)[:20] for v in UNSAFE])
def test_unsafe_names_are_refused_with_kind_value_and_reason(value, reason):
    with pytest.raises(UnsafeNameError) as info:
        validate_component("subject", value)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith("subject name ") and reason in message
    assert "\n" not in message and "\x00" not in message  # one line; control characters escaped
    assert repr(value)[:20] in message


def test_non_text_is_refused():
    with pytest.raises(UnsafeNameError, match="not text"):
        validate_component("dataset", 3)


@pytest.mark.parametrize("value", ["s1/c1", "sub01/EP02_01f"])
def test_clip_ids_are_two_safe_components(value):
    assert validate_clip_id(value) == value


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("s1", "clip id"),
        ("a/b/c", "clip id"),
        ("/c1", "subject name ''"),
        ("s1/..", "clip name '..'"),
        ("../c", "'..'"),
    ],
)
def test_bad_clip_ids(value, named):
    with pytest.raises(UnsafeNameError) as info:
        validate_clip_id(value)
    assert named in str(info.value)


def test_long_values_are_cut_in_messages():
    with pytest.raises(UnsafeNameError) as info:
        validate_component("clip", "a" * 300)
    assert len(str(info.value)) < 160 and "300 characters" in str(info.value)
    assert printable("c\x00x") == "c\\x00x" and printable("微表情") == "微表情"


@pytest.mark.parametrize("adapter", ["folder", "video"])
def test_default_names_of_generic_layouts_follow_the_root(adapter, tmp_path):
    from mer.datasets import default_dataset_name

    a, b = tmp_path / "lab" / "data", tmp_path / "other" / "data"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    name_a, name_b = default_dataset_name(adapter, a), default_dataset_name(adapter, b)
    assert name_a != name_b and name_a.startswith("data-") and name_b.startswith("data-")
    assert default_dataset_name(adapter, a) == name_a  # stable for one root
    assert default_dataset_name("casme2", a) == "casme2"
