from rcchat.cli import main

raise SystemExit(main())
