import sys

from allpayer.cli import main

sys.exit(main())
