"""What the studio checks before it spends money, and what it tells the page about the endpoint:
spend guardrails, the pre-flight model/node check, the /health panel, and the gate composing
them."""
