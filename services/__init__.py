"""The domain: orders, seats, payments, notifications, background jobs. Nothing here imports tornado."""
