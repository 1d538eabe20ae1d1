"""mypy sees every proxy as the Protocol it was made for (and catches wrong arguments)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

SAMPLE = os.path.join(ROOT, "tests", "typing", "reveal_proxies.py")


def test_proxies_are_typed_as_their_protocol() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--disable-error-code",
            "type-abstract",
            "--no-incremental",
            SAMPLE,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    revealed = re.findall(r'Revealed type is "([^"]+)"', proc.stdout)
    assert revealed == [
        "tests.typing.reveal_proxies.Calc",
        "float",
        "vgi_rpc.rpc._streams.AnnotatedBatch",
        "tests.typing.reveal_proxies.Calc",
        "tests.typing.reveal_proxies.Calc",
        "tests.typing.reveal_proxies.Calc",
        "tests.typing.reveal_proxies.Calc",
        "tests.typing.reveal_proxies.Calc",
    ], proc.stdout
    assert (
        'Argument "a" to "add" of "Calc" has incompatible type "str"; expected "float"'
        in proc.stdout
    )
