"""Benchmarks of duplex: each module measures one aspect and returns its figures as a dict."""
