"""The localdigest command line: one module per command group. Results go to stdout, progress and
messages to stderr. The only place that knows flag names and turns errors into one line."""

import sys

import click

from localdigest import __version__
from localdigest.cli.common import flag, say
from localdigest.errors import LocaldigestError


class LocaldigestGroup(click.Group):
    """The one place that turns errors into a one-line message and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LocaldigestError as exc:
            if _debug(ctx):
                raise
            say("Error: " + exc.one_line(flag), "red")
            ctx.exit(1)
        except KeyboardInterrupt:
            say("Interrupted; reviews finished so far are cached and will be reused.")
            ctx.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug or an unforeseen environment problem: still one line, not a traceback
            if _debug(ctx):
                raise
            say(f"Error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback, and please "
                "report it)", "red")
            ctx.exit(1)


def _debug(ctx) -> bool:
    return bool(ctx.params.get("debug")) or "--debug" in sys.argv


@click.group(cls=LocaldigestGroup)
@click.version_option(__version__, prog_name="localdigest")
def main():
    """Daily paper digests in Chinese, written by a local LLM (llama.cpp), fully offline."""


# Each module adds its commands to `main`; importing them here is what registers them.
from localdigest.cli import bench, cache, feeds, models, run, site  # noqa: E402,F401
