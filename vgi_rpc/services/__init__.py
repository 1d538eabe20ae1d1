"""Services built on vgi_rpc's public API."""
