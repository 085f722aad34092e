"""The five Homebound agents, their shared runtime and the `homebound` command line."""

__version__ = "0.1.0"
