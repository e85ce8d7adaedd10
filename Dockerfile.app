# WanPod studio (Gradio 6). Small, non-root (uid 1000, as Hugging Face Spaces require), app
# requirements only: no runpod SDK. Needs RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID at run time
# (the no-credentials demo needs the emulators and the worker venv; use `make run` for that).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    WANPOD_DATA_DIR=/home/user/data

RUN useradd --create-home --uid 1000 user \
    && mkdir -p /home/user/data \
    && chown user:user /home/user/data
WORKDIR /home/user/app

COPY requirements/app.txt requirements/app.txt
RUN pip install --no-cache-dir -r requirements/app.txt

COPY --chown=user:user app/ app/
COPY --chown=user:user workflows/ workflows/

USER 1000
EXPOSE 7860
CMD ["python", "-m", "app"]
