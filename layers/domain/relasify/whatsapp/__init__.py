"""WhatsApp Business Platform: webhook models, signature check and the Graph API client."""
