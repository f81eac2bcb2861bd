"""``python -m pai_magic`` is the ``pai-magic`` command."""
from pai_magic.cli import main

raise SystemExit(main())
