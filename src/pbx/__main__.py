from pbx.cli import main

raise SystemExit(main())
