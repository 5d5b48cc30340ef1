"""Relasify domain package: models, services, data access and the WhatsApp client.

Nothing in this package imports Lambda event or HTTP types except `relasify.web`
(handler wiring) and `relasify.whatsapp.graph` (the Graph API client).
"""
