"""`python -m rehearsal` (what `make rehearse` runs)."""

from rehearsal.run import main

raise SystemExit(main())
