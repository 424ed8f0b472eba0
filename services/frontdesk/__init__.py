"""The front desk: a paid booking moved to another session, and attendance marked on the roster."""
