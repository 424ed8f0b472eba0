"""The WeChat side: the WeChat Pay gateway, its platform keys, notification checks, and the open API."""
