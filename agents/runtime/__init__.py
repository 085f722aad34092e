"""What every agent shares: configuration, logging, and the loop that runs a handler."""
