"""``python -m vgi_rpc.services.vectorindex``: serve the vector index (a pipe worker by default)."""

import sys

from vgi_rpc.services.vectorindex._cli import main

sys.exit(main())
