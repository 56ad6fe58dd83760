"""Dates, cameras, clients and projects read from EXIF, file names and folders."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from PIL import Image

from indexer.decode import decode_photo
from indexer.metadata import (
    CameraInfo,
    NameParts,
    date_from_filename,
    parse_convention_name,
    parse_exif_datetime,
    place_photo,
    read_camera_info,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BROKEN_EXIF_JPEGS = [
    "invalid/image00971.jpg",
    "invalid/image01088.jpg",
    "invalid/image01137.jpg",
    "invalid/image01551.jpg",
    "invalid/image01713.jpg",
    "invalid/image01980.jpg",
    "invalid/image02206.jpg",
]


@pytest.fixture
def photos() -> Path:
    folder = PROJECT_ROOT.parent / "shared" / "testdata" / "photos"
    if not folder.is_dir():
        pytest.skip("test photos not available")
    return folder


def _exif(ifd0: dict[int, object], exif_ifd: dict[int, object] | None = None) -> Image.Exif:
    """An Exif parsed from bytes, exactly as it would come out of a file."""
    source = Image.Exif()
    for tag, value in ifd0.items():
        source[tag] = value
    if exif_ifd:
        source[0x8769] = exif_ifd
    parsed = Image.Exif()
    parsed.load(source.tobytes())
    return parsed


# --- EXIF --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Canon_40D.jpg", CameraInfo(datetime(2008, 5, 30, 15, 56, 1), "Canon", "Canon EOS 40D")),
        (
            "Fujifilm_FinePix_E500.jpg",
            CameraInfo(datetime(2006, 8, 17, 9, 24, 48), "FUJIFILM", "FinePix E500"),
        ),
        (
            "Pentax_K10D.jpg",
            CameraInfo(datetime(2008, 5, 4, 16, 47, 24), "PENTAX Corporation", "PENTAX K10D"),
        ),
        (
            "Nikon_D70.jpg",
            CameraInfo(datetime(2008, 3, 15, 9, 52, 1), "NIKON CORPORATION", "NIKON D70"),
        ),
    ],
)
def test_camera_files_give_capture_time_and_clean_camera_names(
    photos: Path, name: str, expected: CameraInfo
) -> None:
    assert read_camera_info(decode_photo(photos / "jpg" / name).exif) == expected


def test_iphone_heic_gives_its_capture_time(photos: Path) -> None:
    info = read_camera_info(decode_photo(photos / "heic" / "IMG_5195.HEIC").exif)
    assert info == CameraInfo(datetime(2021, 4, 11, 15, 47, 53), "Apple", "iPhone 11 Pro Max")


def test_file_change_date_is_not_taken_for_the_capture_date(photos: Path) -> None:
    # Canon_40D.jpg was re-saved on 2008-07-31 (IFD0 DateTime); it was shot on 2008-05-30.
    assert read_camera_info(decode_photo(photos / "jpg" / "Canon_40D.jpg").exif).taken_at == (
        datetime(2008, 5, 30, 15, 56, 1)
    )
    only_change_date = _exif({0x0132: "2020:01:01 10:00:00"})
    assert read_camera_info(only_change_date).taken_at is None


def test_digitized_time_is_used_when_original_is_missing_or_blank() -> None:
    exif = _exif({}, {0x9003: "0000:00:00 00:00:00", 0x9004: "2019:02:03 04:05:06"})
    assert read_camera_info(exif).taken_at == datetime(2019, 2, 3, 4, 5, 6)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", BROKEN_EXIF_JPEGS)
def test_broken_exif_gives_no_invented_date(photos: Path, name: str) -> None:
    info = read_camera_info(decode_photo(photos / "jpg" / name).exif)
    assert info == CameraInfo(None, None, None)


def test_corrupted_file_keeps_exactly_the_date_it_records(photos: Path) -> None:
    path = photos / "jpg" / "corrupted.jpg"
    assert b"2015:09:08 11:02:17" in path.read_bytes()
    info = read_camera_info(decode_photo(path).exif)
    assert info.taken_at == datetime(2015, 9, 8, 11, 2, 17)
    assert (info.make, info.model) == ("OLYMPUS IMAGING CORP.", "u1020,S1020")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_malformed_exif_block_in_a_file_reads_as_nothing(tmp_path: Path) -> None:
    # IFD0 points the Exif sub-IFD far past the end of the block.
    block = (
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00"
        + b"\x69\x87\x04\x00\x01\x00\x00\x00\x3f\x42\x0f\x00"
        + b"\x00\x00\x00\x00"
    )
    path = tmp_path / "bad_pointer.jpg"
    Image.new("RGB", (32, 24), "grey").save(path, exif=block)
    assert read_camera_info(decode_photo(path).exif) == CameraInfo(None, None, None)


@pytest.mark.parametrize(
    "value",
    [
        "0000:00:00 00:00:00",
        "    :  :     :  :  ",
        "",
        b"\xff\xfe\x00garbage",
        "2023:02:30 10:00:00",
        "2023:13:01 10:00:00",
        "2023:10:15 25:00:00",
        "9999:12:31 23:59:59",
        5,
        None,
        (2023, 10, 15),
    ],
)
def test_implausible_exif_dates_are_none(value: object) -> None:
    assert parse_exif_datetime(value) is None
    in_file = {} if value is None else {0x9003: value}
    assert read_camera_info(_exif({}, in_file)).taken_at is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2008:05:30 15:56:01", datetime(2008, 5, 30, 15, 56, 1)),
        ("2008:05:30 15:56:01\x00", datetime(2008, 5, 30, 15, 56, 1)),
        (b"2008:05:30 15:56:01", datetime(2008, 5, 30, 15, 56, 1)),
        ("2008-05-30T15:56", datetime(2008, 5, 30, 15, 56)),
        ("2008:05:30", datetime(2008, 5, 30)),
    ],
)
def test_exif_date_variants_are_read(value: object, expected: datetime) -> None:
    assert parse_exif_datetime(value) == expected


def test_camera_names_lose_padding_and_nuls() -> None:
    exif = _exif({0x010F: "Canon\x00\x00  ", 0x0110: "  EOS R5 \x00"})
    info = read_camera_info(exif)
    assert (info.make, info.model) == ("Canon", "EOS R5")
    assert read_camera_info(_exif({0x010F: "\x00\x00\x00", 0x0110: "   "})) == CameraInfo(
        None, None, None
    )


def test_empty_exif_gives_nothing() -> None:
    assert read_camera_info(Image.Exif()) == CameraInfo(None, None, None)


# --- naming convention -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("张三_20231015_会议.jpg", NameParts("张三", date(2023, 10, 15), "会议")),
        ("李四_2024-01-05.jpg", NameParts("李四", date(2024, 1, 5), None)),
        ("王五_2024.01.05_年会_下午.JPG", NameParts("王五", date(2024, 1, 5), "年会_下午")),
        ("Acme Corp_20240301_booth.jpg", NameParts("Acme Corp", date(2024, 3, 1), "booth")),
        (" 张三 _ 20231015 _ 会议 .jpg", NameParts("张三", date(2023, 10, 15), "会议")),
        ("张三_20240229_.png", NameParts("张三", date(2024, 2, 29), None)),
        ("欧阳娜娜_20231015_会议 (1).heic", NameParts("欧阳娜娜", date(2023, 10, 15), "会议 (1)")),
    ],
)
def test_convention_names_are_read(filename: str, expected: NameParts) -> None:
    assert parse_convention_name(filename) == expected


@pytest.mark.parametrize(
    "filename",
    [
        "张三_会议.jpg",  # no date
        "张三.jpg",
        "IMG_20231015_123456.jpg",  # camera name that looks like the convention
        "img_20231015_123456.jpg",
        "DSC_20231015.jpg",
        "DSCN0001_20231015.jpg",
        "PXL_20231015_101010123.jpg",
        "VID_20231015_101010.jpg",
        "MVIMG_20231015_101010.jpg",
        "Screenshot_20231015-101010.png",
        "WeChat_20231015101010.jpg",
        "微信图片_20231015101010.jpg",
        "mmexport_20231015.jpg",
        "P_20231015_101010.jpg",
        "20231015_会议.jpg",  # client part is only digits
        "12345_20231015_会议.jpg",
        "张三_20231345_会议.jpg",  # no 13th month
        "张三_20230230_会议.jpg",  # no 30 February
        "张三_20230229.jpg",  # 2023 is not a leap year
        "张三_2023-1-5_会议.jpg",  # month and day need two digits
        "张三_2023-10.15_会议.jpg",  # mixed separators
        "_20231015_会议.jpg",
    ],
)
def test_names_that_only_look_like_the_convention_are_rejected(filename: str) -> None:
    assert parse_convention_name(filename) is None


# --- any date in a file name -------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("IMG_20231015_123456.jpg", date(2023, 10, 15)),
        ("2023-10-15 会议.png", date(2023, 10, 15)),
        ("PXL_20231015_101010123.jpg", date(2023, 10, 15)),
        ("微信图片_20231015123456.jpg", date(2023, 10, 15)),
        ("IMG-20231015-WA0001.jpg", date(2023, 10, 15)),
        ("Screenshot 2023.10.15 at 10.10.10.png", date(2023, 10, 15)),
        ("trip_2023_10_15.jpg", date(2023, 10, 15)),
        ("2023年10月15日 聚会.jpg", date(2023, 10, 15)),
        ("张三_20231015_会议.jpg", date(2023, 10, 15)),
        ("photo 2024-2-29.jpg", date(2024, 2, 29)),
    ],
)
def test_dates_embedded_in_file_names_are_found(filename: str, expected: date) -> None:
    assert date_from_filename(filename) == expected


@pytest.mark.parametrize(
    "filename",
    [
        "DSC_0001.jpg",
        "DSC_12345678.jpg",  # a counter, not a date
        "mmexport1697356800000.jpg",  # epoch milliseconds
        "scan_19850101.jpg",  # before 1990
        "plan_21500101.jpg",  # after 2100
        "IMG_20231345_101010.jpg",
        "2023-02-30 会议.png",
        "IMG_20231301_101010.jpg",
        "会议.jpg",
    ],
)
def test_no_date_is_made_up_from_file_names(filename: str) -> None:
    assert date_from_filename(filename) is None


# --- placement rule ----------------------------------------------------------------------


ROOT = Path("/photos")


@pytest.mark.parametrize(
    ("relative", "client_override", "expected"),
    [
        ("a.jpg", None, (None, None, None)),
        ("客户A/a.jpg", None, ("客户A", "folder", None)),
        ("客户A/项目1/a.jpg", None, ("客户A", "folder", "项目1")),
        ("客户A/项目1/day 2/raw/a.jpg", None, ("客户A", "folder", "项目1")),
        ("张三_20231015_会议.jpg", None, ("张三", "filename", None)),
        ("客户A/张三_20231015_会议.jpg", None, ("张三", "filename", None)),
        ("客户A/项目1/张三_20231015_会议.jpg", None, ("张三", "filename", "项目1")),
        ("a.jpg", "王五", ("王五", "cli", None)),
        ("项目X/a.jpg", "王五", ("王五", "cli", "项目X")),
        ("项目X/sub/张三_20231015_会议.jpg", "王五", ("王五", "cli", "项目X")),
        ("客户A/IMG_20231015_123456.jpg", None, ("客户A", "folder", None)),
        ("客户A/a.jpg", "  ", ("客户A", "folder", None)),
    ],
)
def test_client_and_project_follow_the_documented_rule(
    relative: str, client_override: str | None, expected: tuple[str | None, ...]
) -> None:
    placement = place_photo(ROOT / relative, ROOT, client_override)
    assert (placement.client, placement.client_source, placement.project) == expected


def test_placement_carries_description_and_name_date() -> None:
    named = place_photo(ROOT / "客户A" / "张三_20231015_会议.jpg", ROOT)
    assert (named.description, named.name_date) == ("会议", date(2023, 10, 15))
    camera = place_photo(ROOT / "客户A" / "IMG_20231015_123456.jpg", ROOT)
    assert (camera.description, camera.name_date) == (None, date(2023, 10, 15))
    plain = place_photo(ROOT / "客户A" / "beach.jpg", ROOT)
    assert (plain.description, plain.name_date) == (None, None)


def test_photo_outside_the_root_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not inside"):
        place_photo(Path("/elsewhere/a.jpg"), ROOT)
