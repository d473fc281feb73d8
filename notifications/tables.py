"""Tables of `notifications`: Channels, templates, preferences and reliable delivery of messages to people."""
