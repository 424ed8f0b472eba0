"""Schedules (schedules), orders and their seats: the state machine, row locks and seat counting, booking."""
