"""``python -m flock`` is the ``flocksim`` command."""

from .cli import main

raise SystemExit(main())
