"""A local sandbox of WeChat Pay API v3 and the WeChat mini-program open API (run: python -m sandbox)."""
