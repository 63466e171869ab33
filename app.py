"""Launch the smapgan editing app: ``python app.py [--model DIR_OR_REPO ...] [--max-models K] [--device auto|cpu|cuda]
[--port N] [--host [ADDR]]``."""

import sys

from smapgan.app import main

if __name__ == "__main__":
    sys.exit(main())
