"""HTTP handlers: WeChat Pay v3, the mini-program open API, the control API and the cashier page."""
