"""``python -m vgi_rpc.services.vectorindex``: serve the vector index (a pipe worker by default)."""

import sys

from vgi_rpc.services.vectorindex.cli import main

sys.exit(main())
