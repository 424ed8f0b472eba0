"""The lifecycle of orders, their seat reservations and their refunds: the one writer of every status.

`statuses` names the statuses, the transition tables and the groups; `seats` the seat rule and the schedule's
counter; `locks` the row locks and their order; `orders` and `refunds` the transitions, each with the SQL that
runs it and its audit row; `transactions` the WeChat Pay transaction a payment records.
"""
