from styleclient.cli import main

raise SystemExit(main())
