"""A protocol-faithful stand-in for ComfyUI 0.3.64 (HTTP + websocket), for tests and demo mode.

Command line: `python -m emulators.comfyui --host 127.0.0.1 --port PORT [--step-delay S] ...`.
In process: `create_app(EmulatorConfig(...))` gives the aiohttp application;
`EmulatorThread(config)` serves it on a free port from a background thread (context manager).
Fault knobs: see `config.py`; at run time `GET/POST /emulator/config`.
"""

from .config import KNOBS, ConfigError, EmulatorConfig
from .runner import EmulatorThread, serve
from .server import create_app

__all__ = ["KNOBS", "ConfigError", "EmulatorConfig", "EmulatorThread", "create_app", "serve"]
