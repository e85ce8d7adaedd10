"""`python -m emulators.comfyui --host 127.0.0.1 --port PORT [...]`: run until killed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError, EmulatorConfig
from .runner import serve


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m emulators.comfyui", description="Protocol-faithful ComfyUI 0.3.64 emulator."
    )
    p.add_argument(
        "--host",
        "--listen",
        dest="host",
        default="127.0.0.1",
        nargs="?",
        const="0.0.0.0",
        help="address to bind (bare --listen: 0.0.0.0, like ComfyUI)",
    )
    p.add_argument("--port", type=int, default=8188)
    p.add_argument(
        "--schema",
        type=Path,
        default=None,
        help="an /object_info dump (JSON or .json.gz); default: the shipped Wan 2.2 one",
    )
    p.add_argument(
        "--extra-schema",
        type=Path,
        action="append",
        default=[],
        help="node schemas of an installed custom node pack, merged over the dump (repeatable)",
    )
    p.add_argument("--input-directory", type=Path, default=None)
    p.add_argument("--output-directory", type=Path, default=None)
    p.add_argument("--temp-directory", type=Path, default=None)
    p.add_argument(
        "--step-delay",
        type=float,
        default=0.05,
        help="seconds per sampler step / upscale tile (default 0.05)",
    )
    p.add_argument("--node-delay", type=float, default=0.0, help="seconds every node takes")
    p.add_argument(
        "--startup-delay", type=float, default=0.0, help="wait this long before binding the port"
    )
    p.add_argument(
        "--ws-drop-after",
        type=int,
        default=None,
        help="close each websocket after sending it N messages",
    )
    p.add_argument(
        "--ws-drop-after-type",
        default=None,
        help="close a websocket right after sending it a message of this type",
    )
    p.add_argument("--crash-at-node", default=None, help="os._exit(1) when this node starts")
    p.add_argument("--error-at-node", default=None, help="execution_error at this node")
    p.add_argument("--output-bytes", type=int, default=None, help="pad each mp4 to about N bytes")
    p.add_argument(
        "--video-max-side",
        type=int,
        default=320,
        help="scale encoded video to fit this side (0: full size)",
    )
    p.add_argument(
        "--gc-stall",
        type=float,
        default=0.0,
        help="stall the server this long after a job, at most every 10 s (off: 0)",
    )
    p.add_argument("--no-cache", action="store_true", help="disable the output cache")
    p.add_argument(
        "--max-upload-size",
        type=float,
        default=100.0,
        help="largest request body in MB, like ComfyUI (default 100)",
    )
    p.add_argument(
        "--preview-method",
        default="none",
        choices=["none", "auto", "latent2rgb", "taesd"],
        help="send binary preview frames at sampler steps (default none, like ComfyUI)",
    )
    p.add_argument(
        "--verbose",
        "-v",
        nargs="?",
        const="DEBUG",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="log level like ComfyUI's --verbose [LEVEL] (bare flag: DEBUG; default WARNING)",
    )
    # accepted and ignored, so ComfyUI command lines work unchanged
    for flag in ("--cpu", "--disable-auto-launch", "--disable-metadata", "--log-stdout"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--extra-model-paths-config",
        type=Path,
        nargs="+",
        action="append",
        default=[],
        help="ComfyUI extra_model_paths.yaml: loader lists from disk",
    )
    p.add_argument(
        "--base-directory",
        type=Path,
        default=None,
        help="ComfyUI base directory: its models/ folders are scanned too",
    )
    for opt in ("--user-directory", "--database-url"):
        p.add_argument(opt, default=None, help=argparse.SUPPRESS)
    args, unknown = p.parse_known_args(argv)
    if unknown:  # other ComfyUI options (--preview-method auto, --highvram, ...) are ignored
        print(f"comfyui emulator: ignoring options {unknown}", file=sys.stderr)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.verbose or "WARNING"),
        format="%(asctime)s comfyui-emulator %(levelname)s %(message)s",
    )
    if args.temp_directory is not None:  # ComfyUI's main.py keeps its temp files in D/temp
        args.temp_directory = args.temp_directory / "temp"
    base = args.base_directory
    for name in ("input", "output", "temp"):  # ComfyUI: --base-directory moves these too
        if base is not None and getattr(args, f"{name}_directory") is None:
            setattr(args, f"{name}_directory", base / name)
    try:
        config = EmulatorConfig(
            input_directory=args.input_directory,
            output_directory=args.output_directory,
            temp_directory=args.temp_directory,
            schema_path=args.schema,
            extra_schemas=list(args.extra_schema),
            extra_model_paths=[p for group in args.extra_model_paths_config for p in group],
            base_directory=args.base_directory,
            step_delay=args.step_delay,
            node_delay=args.node_delay,
            startup_delay=args.startup_delay,
            ws_drop_after=args.ws_drop_after,
            ws_drop_after_type=args.ws_drop_after_type,
            crash_at_node=args.crash_at_node,
            error_at_node=args.error_at_node,
            output_bytes=args.output_bytes,
            video_max_side=args.video_max_side,
            cache=not args.no_cache,
            preview_method=args.preview_method,
            gc_stall=args.gc_stall,
            max_upload_size_mb=args.max_upload_size,
            argv=["main.py", *(argv if argv is not None else sys.argv[1:])],
        )
    except (ConfigError, OSError, ValueError) as e:
        print(f"comfyui emulator: {e}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
