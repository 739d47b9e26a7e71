import sys

from lmcore.cli.main import main

sys.exit(main())
