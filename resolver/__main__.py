"""`python -m resolver` is the same as the `safe-resolver` command."""

from resolver.cli import main

raise SystemExit(main())
