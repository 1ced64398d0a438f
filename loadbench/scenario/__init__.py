"""The locustfile API: what a scenario (``scenarios/*.py`` or your own locustfile) imports to drive
a model endpoint: request options, payloads, the Locust user, JSON checks, per-request extras,
LLM streaming, labels for quality, HTTP/2.

Imports locust: only the driver and scenarios import this package.
"""
