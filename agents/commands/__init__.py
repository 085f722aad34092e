"""One module per `homebound` command group; each exposes `register(subparsers)`."""
