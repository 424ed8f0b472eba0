"""What the back office reads: order stories, lists, the notification inbox, the audit, the figures."""
