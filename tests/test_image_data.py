"""Image folders: the three layouts, quarantine with reasons, EXIF/GPS stripped from every
stored copy, captions through governance (consent, blocked terms, PII), resize/crop/buckets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from polyadapt.errors import DataError, GovernanceError
from polyadapt.governance.engine import govern_dataset
from polyadapt.governance.policy import Policy
from polyadapt.governance.redact import Redactor
from polyadapt.governance.scanners import builtin_scanners
from polyadapt.modalities.image import (
    load_image_folder,
    make_buckets,
    nearest_bucket,
    open_rgb,
    resize_and_crop,
)
from polyadapt_image.options import ImageOptions
from polyadapt_image.task import TextToImageTask
from polyadapt_image.testing import make_test_images

REASONS = {
    "corrupt.png": "not an image",
    "truncated.jpg": "corrupt image: the file is truncated",
    "tiny.png": "too small",
    "notes.png": "not an image",
    "readme.txt": "not an image: extension",
}


def assert_no_metadata(path: Path) -> None:
    with Image.open(path) as image:
        assert not len(image.getexif()), f"{path} still has EXIF"
        assert "exif" not in image.info and "xmp" not in image.info, path
        assert not getattr(image, "text", {}), path


@pytest.mark.parametrize("layout", ["jsonl", "csv", "txt"])
def test_layouts_load_and_quarantine_with_reasons(tmp_path, layout):
    made = make_test_images(tmp_path / "data", n=5, layout=layout)
    dataset = load_image_folder(tmp_path / "data", clean_dir=tmp_path / "clean", min_size=8)

    assert len(dataset.records) == 5
    assert dataset.scanned_fields == ("text", "file_name")
    assert {r["file_name"] for r in dataset.records} == {row["file_name"] for row in made["rows"][:5]}
    reasons = [q.reason for q in dataset.quarantined]
    assert len(reasons) == len(made["bad"])
    if layout == "jsonl":  # lines point into metadata.jsonl, in order
        by_file = dict(zip(made["bad"], dataset.quarantined))
        for name, expected in REASONS.items():
            assert by_file[name].reason.startswith(expected), (name, by_file[name].reason)
            assert by_file[name].line == made["rows"].index(next(r for r in made["rows"] if r["file_name"] == name)) + 1
    # the quarantine never holds content, only where and why
    assert all(set(q.to_dict()) == {"source", "index", "line", "reason"} for q in dataset.quarantined)
    # consent travels from the metadata; the caption-file layout has none
    assert all(("consent" in r) == (layout != "txt") for r in dataset.records)


def test_exif_and_gps_are_stripped_from_every_stored_copy(tmp_path):
    made = make_test_images(tmp_path / "data", n=4)
    with Image.open(tmp_path / "data" / made["exif_image"]) as original:
        assert len(original.getexif()) and original.getexif().get_ifd(0x8825), "the test photo must carry GPS"
    dataset = load_image_folder(tmp_path / "data", clean_dir=tmp_path / "clean", min_size=8)
    photo = next(r for r in dataset.records if r["file_name"] == made["exif_image"])
    assert photo["stripped"] == ["exif", "gps"]
    stored = [p for p in (tmp_path / "clean").iterdir()]
    assert len(stored) == 4 and not [p for p in stored if p.name.startswith(".")]
    for path in stored:
        assert_no_metadata(path)
        assert path.stem == photo["image_sha256"] or path.name in {r["image"] for r in dataset.records}


def test_duplicates_missing_files_and_escaping_paths(tmp_path):
    folder = tmp_path / "data"
    make_test_images(folder, n=2, bad=False)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    rows += [
        {**rows[1], "text": "the same pixels again"},
        {"file_name": "gone.png", "text": "a missing file", "consent": True},
        {"file_name": "../outside.png", "text": "escapes the folder", "consent": True},
        {"file_name": "img-001.png", "text": "", "consent": True},
        {"text": "no file name"},
    ]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    dataset = load_image_folder(folder, clean_dir=tmp_path / "clean", min_size=8)
    assert len(dataset.records) == 2
    reasons = [q.reason.split(":")[0] for q in dataset.quarantined]
    assert reasons == [
        "duplicate image",
        "missing file",
        "bad file_name",
        "missing caption",
        "missing field",
        "invalid JSON",
    ]
    with pytest.raises(DataError, match="not an image folder"):
        load_image_folder(tmp_path / "nowhere", clean_dir=tmp_path / "clean")


def _govern(dataset, policy):
    """Govern as a text-to-image run does: consent required unless the policy says otherwise."""
    return govern_dataset(
        dataset,
        policy=policy,
        redactor=Redactor(policy, builtin_scanners(), b"k" * 32),
        modality="image",
        licence="CC0-1.0",
        consent_default=TextToImageTask.consent_required,
    )


def test_captions_pass_governance(tmp_path):
    folder = tmp_path / "data"
    make_test_images(folder, n=6, bad=False)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    rows[0]["text"] = "banner for jane.doe@example.com"
    rows[1]["text"] = "in the style of Greg Rutkowski"
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = load_image_folder(folder, clean_dir=tmp_path / "clean", min_size=8)

    governed = _govern(dataset, Policy(blocked_terms=["Greg Rutkowski"], max_finding_share=0.5))
    texts = [r["text"] for r in governed.dataset.records]
    assert len(texts) == 5 and not any("Rutkowski" in t for t in texts)
    assert "jane.doe@example.com" not in " ".join(texts) and "<EMAIL_1>" in texts[0]
    assert [d.action for d in governed.decisions][:2] == ["redacted", "dropped"]

    # the image task requires consent under the strict default: a folder without it is refused
    bare = tmp_path / "bare"
    make_test_images(bare, n=3, bad=False, consent=None)
    with pytest.raises(GovernanceError, match="rule consent"):
        _govern(load_image_folder(bare, clean_dir=tmp_path / "clean2", min_size=8), Policy())


def test_resize_crop_and_buckets(tmp_path):
    wide = Image.new("RGB", (60, 30), (255, 0, 0))
    assert resize_and_crop(wide, (16, 16)).size == (16, 16)
    assert resize_and_crop(wide, (16, 16), "none").size == (32, 16)
    buckets = make_buckets(64, 8)
    assert (64, 64) in buckets and all(w % 8 == 0 and h % 8 == 0 for w, h in buckets)
    assert nearest_bucket(1920, 1080, buckets)[0] > nearest_bucket(1920, 1080, buckets)[1]
    assert nearest_bucket(500, 500, buckets) == (64, 64)
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.save(tmp_path / "t.png")
    assert open_rgb(tmp_path / "t.png").getpixel((0, 0)) == (255, 255, 255)


def test_options_are_validated():
    from pydantic import ValidationError

    assert ImageOptions().min_size() == 256 and ImageOptions().caches_latents()
    assert not ImageOptions(crop="random").caches_latents()
    with pytest.raises(ValidationError, match="multiple of 8"):
        ImageOptions(resolution=500)
    with pytest.raises(ValidationError):
        ImageOptions(prediction_type="sample")


def test_clip_score_with_a_configured_clip_model(tmp_path):
    pytest.importorskip("torch")
    from polyadapt_image.evaluate import clip_scores
    from polyadapt_image.testing import brand_image, build_tiny_clip

    clip = build_tiny_clip(tmp_path / "clip")
    images = [brand_image("solvanta", 16, 0), brand_image("marlowe", 16, 1)]
    score = clip_scores(str(clip), images, ["a solvanta banner", "a marlowe banner"])
    assert 0.0 <= score <= 100.0
    assert score == clip_scores(str(clip), images, ["a solvanta banner", "a marlowe banner"])


def test_examples_record_the_crop_geometry_sdxl_conditions_on(tmp_path):
    """Each example carries (height, width) of the original and of the target and the
    (top, left) where its cut starts; a random cut and mirror record what the pixels show."""
    import torch

    from polyadapt.modalities.image import resize_to_cover
    from polyadapt_image.conditioning import SDConditioning
    from polyadapt_image.data import Collator, build_examples, condition_of, to_tensor
    from polyadapt_image.testing import build_clip_tokenizer

    image = Image.new("RGB", (40, 24))
    image.putdata([(x * 6, y * 10, (x * y) % 256) for y in range(24) for x in range(40)])
    image.save(tmp_path / "wide.png")
    records = [{"image": "wide.png", "text": "a wide banner", "width": 40, "height": 24}]
    conditioning = SDConditioning(text_encoder=None, tokenizer=build_clip_tokenizer(tmp_path / "tokenizer"))

    (centre,) = build_examples(tmp_path, records, conditioning, ImageOptions(resolution=16), 8)
    assert centre["original_size"].tolist() == [24, 40] and centre["target_size"].tolist() == [16, 16]
    assert centre["crop_top_left"].tolist() == [0, 5]  # resized to 27x16, the centre cut starts at x=5
    assert set(condition_of(centre)) == {"input_ids", "original_size", "crop_top_left", "target_size"}

    options = ImageOptions(resolution=16, crop="random", random_flip=True)
    (whole,) = build_examples(tmp_path, records, conditioning, options, 8)
    covered = to_tensor(resize_to_cover(Image.open(tmp_path / "wide.png").convert("RGB"), (16, 16)))
    assert torch.equal(whole["pixels"], covered)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        (group,) = Collator("random", random_flip=True)([whole])["groups"]
        top, left = group["crop_top_left"][0].tolist()
        # the pixels are the cut at (top, left) of the image as mirrored, or not
        mirrored = [
            flip
            for flip, shown in ((False, covered), (True, covered.flip(-1)))
            if torch.equal(group["pixels"][0], shown[:, top : top + 16, left : left + 16])
        ]
        assert len(mirrored) == 1, (seed, top, left)
        seen.update(mirrored)
        assert group["original_size"].tolist() == [[24, 40]] and group["target_size"].tolist() == [[16, 16]]
    assert seen == {True, False}
