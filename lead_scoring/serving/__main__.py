"""`python -m lead_scoring.serving --artifact URI [--port N] [--host H]`: same as `lead-scoring serve`."""

import logging

import typer

from lead_scoring.serving.cli import serve


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.run(serve)


if __name__ == "__main__":
    main()
