"""The studio's service: jobs, ledger, tracker, cost, forms, images, batch, history.

No Gradio here (app/ui calls this package, never the reverse); the endpoint is reached only
through app/endpoint. The operator's checks before /run live in app/studio/checks.
"""
