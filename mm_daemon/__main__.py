"""`python -m mm_daemon` is the `mm-daemon` command."""

from mm_daemon.cli import main

main()
