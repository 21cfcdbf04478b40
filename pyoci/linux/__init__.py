"""One module per kernel mechanism the container process is built from."""
