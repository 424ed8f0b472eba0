"""Paying: the WeChat Pay order (prepay), cancel and close, and payment notifications."""
