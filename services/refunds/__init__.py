"""Refunds through WeChat Pay: asked by operators, settled by notification or by the reconciler."""
