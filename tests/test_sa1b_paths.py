"""Table-driven tests of the SA-1B path mapper (svitpipe.sa1b.paths)."""

from __future__ import annotations

import pytest

from svitpipe.sa1b.paths import SA1BImageRef, member_file_name, parse_sa1b_image_path

# (upstream image path, tar stem, member file name)
VALID = [
    ("sa_000123/sa_4567.jpg", "sa_000123", "sa_4567.jpg"),
    ("sa_000000/sa_1.jpg", "sa_000000", "sa_1.jpg"),
    ("sa_000999/sa_11187.jpg", "sa_000999", "sa_11187.jpg"),
    ("sa_000001/sa_0.jpg", "sa_000001", "sa_0.jpg"),
    ("sa_000002/sa_123456789012.jpg", "sa_000002", "sa_123456789012.jpg"),
    # under more folders: the tar is the folder right above the file
    ("images/sa_000123/sa_4567.jpg", "sa_000123", "sa_4567.jpg"),
    ("sa1b/images/sa_000042/sa_7.jpg", "sa_000042", "sa_7.jpg"),
    ("./sa_000005/sa_9.jpg", "sa_000005", "sa_9.jpg"),
    ("sa_000001/sa_000002/sa_3.jpg", "sa_000002", "sa_3.jpg"),
]

INVALID = [
    ("sa_4567.jpg", "no tar folder"),
    ("sa_00012/sa_4567.jpg", "5-digit tar"),
    ("sa_0000123/sa_4567.jpg", "7-digit tar"),
    ("sa_000123/sa_.jpg", "no image number"),
    ("sa_000123/sa_12a.jpg", "letter in the number"),
    ("sa_000123/sa_4567.png", "not a jpg"),
    ("sa_000123/sa_4567.JPG", "upper-case extension"),
    ("sa_000123/sa_4567.jpeg", "jpeg extension"),
    ("sa_000123/sa_4567.json", "the annotation, not the image"),
    ("sa_000123/img_4567.jpg", "not an sa_ file"),
    ("SA_000123/sa_4567.jpg", "upper-case tar"),
    ("sa_000123/sub/sa_4567.jpg", "folder between tar and file"),
    ("sa_000123.tar/sa_4567.jpg", "tar file name as folder"),
    ("sa_000123\\sa_4567.jpg", "backslash separator"),
    ("sa_000123//sa_4567.jpg", "empty path part"),
    ("/sa_000123/sa_4567.jpg", "absolute path"),
    ("sa_000123/sa_4567.jpg/", "trailing slash"),
    (" sa_000123/sa_4567.jpg", "leading space"),
    ("sa_000123/sa_4567.jpg ", "trailing space"),
    ("sa_000123/sa_4567.jpg\n", "trailing newline"),
    ("sa_٠٠٠١٢٣/sa_4567.jpg", "Arabic-Indic digits in the tar"),
    ("sa_000123/sa_４５.jpg", "full-width digits in the file"),
    ("", "empty"),
    ("sa_000123/", "no file"),
]

NOT_STRINGS = [None, 123, ["sa_000123/sa_4567.jpg"], b"sa_000123/sa_4567.jpg", {"path": "sa_000123/sa_4567.jpg"}]


@pytest.mark.parametrize("path, tar, member", VALID)
def test_valid_paths(path, tar, member):
    assert parse_sa1b_image_path(path) == SA1BImageRef(path=path, tar=tar, member=member)


@pytest.mark.parametrize("path, why", INVALID, ids=[why for _, why in INVALID])
def test_invalid_paths(path, why):
    with pytest.raises(ValueError) as caught:
        parse_sa1b_image_path(path)
    assert repr(path) in str(caught.value)
    assert "sa_NNNNNN/sa_K.jpg" in str(caught.value)


@pytest.mark.parametrize("value", NOT_STRINGS, ids=lambda value: type(value).__name__)
def test_non_strings(value):
    with pytest.raises(ValueError, match="must be a string"):
        parse_sa1b_image_path(value)


# (tar member name, file name it is matched by)
MEMBERS = [
    ("sa_4567.jpg", "sa_4567.jpg"),
    ("./sa_4567.jpg", "sa_4567.jpg"),
    ("sa_000123/sa_4567.jpg", "sa_4567.jpg"),
    ("./sa_000123/sa_4567.jpg", "sa_4567.jpg"),
    ("a/b/c/sa_4567.json", "sa_4567.json"),
    ("sa_000123/", ""),
]


@pytest.mark.parametrize("name, file_name", MEMBERS)
def test_member_file_name(name, file_name):
    assert member_file_name(name) == file_name


@pytest.mark.parametrize("path, tar, member", VALID)
def test_a_parsed_path_finds_its_member_under_any_prefix(path, tar, member):
    ref = parse_sa1b_image_path(path)
    for stored_as in (member, f"./{member}", f"{tar}/{member}"):
        assert member_file_name(stored_as) == ref.member
