"""`python -m lab up | down | status | seed`: the lab CLI without the rest of Homebound."""

from lab.cli import main

raise SystemExit(main())
