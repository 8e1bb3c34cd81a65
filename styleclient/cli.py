"""`python -m styleclient`: stylize one photo, one video or a folder of photos through a
styleserve URL."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from styleclient.client import (
    SNIFF_BYTES,
    StyleClient,
    StyleServeError,
    gcloud_identity_token,
    video_type,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
FORMAT_OF_SUFFIX = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}
VIDEO_FORMAT = "mp4"  # a video's only output format: H.264 MP4 with the original sound


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m styleclient",
        description="Repaint photos and videos with a styleserve service. INPUT is a photo, a "
        "video (.mp4 .m4v .mov .webm .mkv; it comes back as an MP4 with its sound) or a folder "
        "of photos; a folder is done file by file, past errors, with a progress bar.",
    )
    p.add_argument("input", nargs="?", type=Path, help="a photo, a video, or a folder of photos")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output file (a photo or a video) or folder (a folder); default: next to the "
        "input, PHOTO-stylized.jpg, VIDEO-stylized.mp4 or FOLDER-stylized/",
    )
    p.add_argument(
        "--url",
        default=os.environ.get("STYLESERVE_URL", "http://localhost:8080"),
        help="service URL (default: $STYLESERVE_URL or %(default)s)",
    )
    p.add_argument("--list-styles", action="store_true", help="print the styles and exit")
    opts = p.add_argument_group("request options (the server's defaults when left out)")
    opts.add_argument(
        "--style",
        help="a style name, or a mix of styles of one network with weights, "
        "NAME:W,NAME:W (e.g. starry_night:0.6,the_scream:0.4; see --list-styles)",
    )
    opts.add_argument(
        "--style-image",
        type=Path,
        metavar="PAINTING",
        help="instead of --style: any painting (JPEG, PNG, ...); the photo is painted like it "
        "by no network trained on it (photos only)",
    )
    opts.add_argument(
        "--arch",
        help="the network: fast (light, sized for a CPU) or johnson (Johnson et al.'s full "
        "network); default: the style's own (--list-styles shows each style's archs)",
    )
    opts.add_argument("--strength", type=float, help="0..1, blend with the original")
    opts.add_argument(
        "--preserve-color", action="store_true", default=None, help="keep the photo's colours"
    )
    opts.add_argument(
        "--stroke-scale",
        type=float,
        help="0.25..4, stroke size relative to the picture (1: as on a 1024 px result)",
    )
    opts.add_argument(
        "--max-size", type=int, help="shrink the result's longest side to this (default: full size)"
    )
    opts.add_argument(
        "--format",
        choices=[*sorted(EXTENSIONS), VIDEO_FORMAT],
        help="a photo's output format (default jpeg); a video's is always mp4",
    )
    opts.add_argument("--quality", type=int, help="1..100, for JPEG and WebP photos")
    auth = p.add_argument_group("authentication (Cloud Run services that are not --public)")
    who = auth.add_mutually_exclusive_group()
    who.add_argument("--token", help="identity token (default: $STYLESERVE_TOKEN)")
    who.add_argument(
        "--gcloud-token",
        action="store_true",
        help="get one from `gcloud auth print-identity-token`",
    )
    net = p.add_argument_group("network")
    net.add_argument("--retries", type=int, default=4, help="on 429/503/connection errors")
    net.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds per request (default %(default)s: a video takes seconds to minutes)",
    )
    net.add_argument("--jobs", type=int, default=1, help="requests at once for a folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.list_styles and args.input is None:
        parser.error("give a photo, a video or a folder (or --list-styles)")
    if args.jobs < 1 or args.retries < 0:
        parser.error("--jobs must be at least 1 and --retries at least 0")
    refusal = style_image_refusal(args)
    if refusal:
        return fail(refusal)
    try:
        token = gcloud_identity_token() if args.gcloud_token else args.token
    except RuntimeError as e:
        return fail(str(e))
    client = StyleClient(
        args.url,
        token or os.environ.get("STYLESERVE_TOKEN") or None,
        timeout_s=args.timeout,
        video_timeout_s=args.timeout,
        retries=args.retries,
        on_retry=lambda reason, delay: tqdm.write(
            f"retrying in {delay:.1f} s: {reason}", file=sys.stderr
        ),
    )
    try:
        if args.list_styles:
            return list_styles(client)
        if args.input.is_dir():
            return stylize_folder(client, args)
        if not args.input.is_file():
            return fail(f"{args.input}: no such file or folder")
        if args.style_image is not None and is_video(args.input):
            return fail(
                "--style-image works with photos; give a photo or a folder of photos, "
                "or use --style for a video"
            )
        return stylize_file(client, args)
    except StyleServeError as e:
        return fail(f"{e.status} {e.code}: {e.message}")
    except requests.RequestException as e:
        return fail(f"could not reach {args.url}: {short_reason(e)}")


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def short_reason(error: Exception) -> str:
    """ "[Errno 111] Connection refused" rather than urllib3's whole wrapped repr."""
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(error))
    return found.group(0) if found else f"{type(error).__name__}: {error}"


def list_styles(client: StyleClient) -> int:
    listing = client.styles()
    for s in listing["styles"]:
        mark = "*" if s["name"] == listing["default"] else " "
        mixes = s.get("mixable_with") or []
        also = f"; mixes with {', '.join(mixes)}" if mixes else ""
        print(f"{mark} {s['name']:<20} {s['title']} ({s['artist']}; {', '.join(s['archs'])}{also})")
    print("(* the default)")
    return 0


def request_options(args: argparse.Namespace, fmt: str | None) -> dict[str, Any]:
    """The API's options from the command line (None: the server's default)."""
    return {
        "style": args.style,
        "arch": args.arch,
        "strength": args.strength,
        "preserve_color": args.preserve_color,
        "max_size": args.max_size,
        "stroke_scale": args.stroke_scale,
        "format": fmt,
        "quality": args.quality,
    }


def style_image_refusal(args: argparse.Namespace) -> str | None:
    """Why --style-image does not fit the rest of the command line, said before any upload."""
    painting = args.style_image
    if painting is None:
        return None
    if args.style is not None:
        return (
            "--style and --style-image: choose one (--style names one of the service's "
            "paintings, see --list-styles; --style-image brings your own)"
        )
    if args.arch is not None:
        return "--arch applies to named styles; leave it out with --style-image"
    if not painting.is_file():
        return f"--style-image {painting}: no such file"
    if is_video(painting):
        return f"--style-image {painting} is a video; give a picture (JPEG, PNG, WebP, ...)"
    return None


def is_video(path: Path) -> bool:
    """A video by its suffix, else by its first bytes, as StyleClient.stylize decides."""
    with path.open("rb") as file:
        return video_type(path.name, file.read(SNIFF_BYTES)) is not None


def video_refusal(args: argparse.Namespace) -> str | None:
    """Why the command line does not fit a video, said before minutes of upload: a video always
    comes back as MP4, and a JPEG's quality does not apply."""
    if args.format not in (None, VIDEO_FORMAT):
        return (
            f"--format {args.format} is for photos; a video comes back as mp4 (leave --format out)"
        )
    if args.quality is not None:
        return "--quality is for photos (JPEG, WebP); leave it out for a video"
    if args.output is not None and args.output.suffix.lower() in IMAGE_SUFFIXES:
        return f"-o {args.output}: a video comes back as an MP4; name the output .mp4"
    return None


def stylize_video(client: StyleClient, args: argparse.Namespace) -> int:
    refusal = video_refusal(args)
    if refusal:
        return fail(refusal)
    out = args.output or args.input.with_name(f"{args.input.stem}-stylized.mp4")
    # One line up front: the answer can take minutes, and silence looks like a hang.
    print(
        f"{args.input}: painting a video frame by frame (up to {args.timeout:g} s)...",
        file=sys.stderr,
    )
    data = client.stylize(args.input, **request_options(args, args.format))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"{args.input} -> {out}")
    return 0


def photo_refusal(args: argparse.Namespace) -> str | None:
    """--format mp4 asks for a video's format: refused for photos before any upload."""
    if args.format == VIDEO_FORMAT:
        return f"--format {VIDEO_FORMAT} is for videos; a photo comes back as jpeg, png or webp"
    return None


def stylize_file(client: StyleClient, args: argparse.Namespace) -> int:
    if is_video(args.input):
        return stylize_video(client, args)
    refusal = photo_refusal(args)
    if refusal:
        return fail(refusal)
    fmt = args.format
    if args.output is not None and fmt is None:
        # `-o out.png` means PNG: the bytes should match the name
        fmt = FORMAT_OF_SUFFIX.get(args.output.suffix.lower())
    out = args.output or args.input.with_name(
        f"{args.input.stem}-stylized{EXTENSIONS[fmt or 'jpeg']}"
    )
    data = client.stylize(args.input, style_image=args.style_image, **request_options(args, fmt))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"{args.input} -> {out}")
    return 0


def output_names(photos: list[Path], ext: str) -> dict[Path, str]:
    """photo.jpg -> photo.jpg; where two photos share a stem (a.jpg, a.png), keep the suffix."""
    stems = [p.stem for p in photos]
    return {
        p: (f"{p.stem}_{p.suffix[1:]}" if stems.count(p.stem) > 1 else p.stem) + ext for p in photos
    }


def stylize_folder(client: StyleClient, args: argparse.Namespace) -> int:
    photos = sorted(
        p
        for p in args.input.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not photos:
        return fail(f"{args.input}: no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
    refusal = photo_refusal(args)
    if refusal:
        return fail(refusal)
    out_dir = args.output or args.input.with_name(f"{args.input.name}-stylized")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = output_names(photos, EXTENSIONS[args.format or "jpeg"])
    options = request_options(args, args.format)
    painting = None if args.style_image is None else args.style_image.read_bytes()  # read once
    failed: list[Path] = []

    def one(photo: Path) -> None:
        (out_dir / names[photo]).write_bytes(client.stylize(photo, style_image=painting, **options))

    with (
        ThreadPoolExecutor(args.jobs) as pool,
        tqdm(total=len(photos), unit="photo", file=sys.stderr) as bar,
    ):
        futures = {pool.submit(one, p): p for p in photos}
        for future in as_completed(futures):
            photo = futures[future]
            try:
                future.result()
            except StyleServeError as e:
                failed.append(photo)
                tqdm.write(f"{photo.name}: {e.status} {e.code}: {e.message}", file=sys.stderr)
            except (requests.RequestException, OSError) as e:
                failed.append(photo)
                tqdm.write(f"{photo.name}: {short_reason(e)}", file=sys.stderr)
            bar.update()
    done = len(photos) - len(failed)
    print(f"{done} of {len(photos)} photos stylized into {out_dir}", end="")
    print(f"; {len(failed)} failed: {', '.join(sorted(p.name for p in failed))}" if failed else "")
    return 1 if failed else 0


def run() -> None:
    """The `styleclient` command's entry point."""
    raise SystemExit(main())
