"""What the back office reads: order stories, lists with cursor paging, the inbox, the audit, the figures."""
