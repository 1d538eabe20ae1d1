"""``python -m vgi_rpc.cli``: the ``vgi-rpc`` command."""

import sys

from vgi_rpc.cli import main

sys.exit(main())
