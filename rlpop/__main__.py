from rlpop.run import main

raise SystemExit(main())
