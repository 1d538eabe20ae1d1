"""Services built on the public vgi_rpc API."""
