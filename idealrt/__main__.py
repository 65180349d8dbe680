from idealrt.cli import main

raise SystemExit(main())
