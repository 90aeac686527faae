"""The action container's entry point: ``entrypoint.py sign|verify|revoke|attest``.

The runner starts the image with the action's ``args`` and its inputs as ``INPUT_*``
variables; everything else happens in :mod:`signer.action`.
"""

import sys

from signer.action import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
