import sys

from fedgmr.cli import main

sys.exit(main())
