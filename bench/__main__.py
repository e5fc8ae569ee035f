"""Run every bench module (or those named on the command line) and print their tables."""

import sys

from eval.__main__ import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], package="bench"))
