"""``python -m superconverge``: the same as the ``superconverge`` command."""

from superconverge.cli.main import main

raise SystemExit(main())
