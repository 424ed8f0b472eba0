"""Schedules and orders as parents meet them: the schedules with their seats left, booking an order, reading it."""
