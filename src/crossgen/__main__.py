from crossgen.cli import main

raise SystemExit(main())
