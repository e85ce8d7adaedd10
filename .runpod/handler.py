"""The RunPod Hub looks for a handler.py here or at the root. WanPod's handler is
worker/handler.py; the image (Dockerfile.worker, copied here as .runpod/Dockerfile) runs it
through worker/start.sh, which starts ComfyUI first. Running this file starts the same handler."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.handler import main

if __name__ == "__main__":
    main()
