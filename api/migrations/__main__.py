"""``python -m api.migrations``: see ``api.migrations``."""

from api.migrations import main

raise SystemExit(main())
