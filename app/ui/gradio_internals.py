"""The Gradio whose internals the studio reaches into, checked by hand: one version, one place.

Four modules use parts of Gradio that are not its public API, each to stop work Gradio does at
every event or every millisecond:
- app/ui/queue_pace.py: the queue's `sleep_when_free` / `progress_update_sleep_when_free`, and
  the `import matplotlib` Gradio tries around every event (marked absent when not installed);
- app/ui/sessions.py: `gradio.state_holder`'s SessionState / StateHolder;
- app/ui/static_paths.py: the order of `gradio.data_classes._StaticFiles.all_paths`;
- app/ui/serving.py: `blocks.server` being uvicorn's Server (its config and listening sockets),
  read to say which HTTP parser and event loop serve.
tests/app/test_sessions.py fails when the installed Gradio is not REVIEWED_WITH (an upgrade
must not change them silently); docs/operating.md says what to compare before moving it.
"""

REVIEWED_WITH = "6.31.0"
