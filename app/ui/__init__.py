"""The studio's Gradio wiring: the page, the form, batch and history sections, custom fields and
the early page script. Only this package imports Gradio; it calls app/studio for every decision."""
