"""The emulator's shared state (config, schema, hub, queue, executor), one per aiohttp app."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from aiohttp import web

from .config import EmulatorConfig
from .executor import Executor
from .hub import Hub
from .models import ModelFolders
from .prompt_queue import PromptQueue
from .schema import Schema, load_schema_file, with_extra_schemas

STATE: web.AppKey[State] = web.AppKey("comfy_state")


class State:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        models = None
        if config.extra_model_paths or config.base_directory:
            models = ModelFolders.from_config(
                config.extra_model_paths, config.base_directory, config.output_directory
            )
        nodes = with_extra_schemas(load_schema_file(config.schema_path), config.extra_schemas)
        self.schema = Schema(nodes, config.input_directory, models)
        self.hub = Hub(config)
        self.queue = PromptQueue(self.hub)
        self.executor = Executor(config, self.schema, self.hub, self.queue)
        self.number = 0
        self.requests: deque[dict] = deque(maxlen=1000)  # GET /emulator/requests

    def dir_by_type(self, typ: str | None) -> Path | None:
        return {
            "input": self.config.input_directory,
            "output": self.config.output_directory,
            "temp": self.config.temp_directory,
        }.get(typ or "input")


def get_state(request: web.Request) -> State:
    return request.app[STATE]
