"""The gym's books against WeChat Pay's: a day's trade bill fetched and verified (`bill_file`), compared with the
ledger's day (`ledger`) and mended through the ordinary lifecycle where WeChat Pay's query confirms it
(`reconcile`), finance's decisions on the rest (`decisions`), what the API and the pages show
(`views`), and what finance takes out: the CSV exports (`exports`) and the day report (`report`). The daily job
is services/jobs/bills.py.
"""
