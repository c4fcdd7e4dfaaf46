from rlpop.cli import main

raise SystemExit(main())
