"""The error tree: every failure a user can cause is one of these, shown as one line."""

from __future__ import annotations


class GridkitError(Exception):
    """Base of every user-facing error; ``str(err)`` is the one line the CLI prints."""

    #: Process exit status when this error ends a CLI command. 2 = bad input (usage, config,
    #: data files, plugins), 1 = a failure while the pipeline was running, 3 = the exchange
    #: could not be reached at the start of a paper or live run.
    exit_code: int = 2


class ConfigError(GridkitError):
    """pipeline.toml is invalid; ``problems`` holds every problem found, each with its TOML path."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__(self._line())

    def _line(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return f"{where}{self.problems[0]}"
        return f"{where}{len(self.problems)} problems: " + "; ".join(self.problems)


class PluginError(GridkitError):
    """A plugin could not be loaded, registered a bad component, or a required plugin is missing."""


class DataError(GridkitError):
    """A market-data file is missing, empty, truncated or not in the format its source reads."""


class ComponentError(GridkitError):
    """A component raised while the pipeline was running; names the component and its plugin."""

    exit_code = 1

    def __init__(self, kind: str, name: str, plugin: str, error: BaseException, where: str = ""):
        self.kind, self.name, self.plugin, self.error = kind, name, plugin, error
        at = f" {where}" if where else ""
        super().__init__(
            f"{kind} '{name}' (plugin {plugin}) raised{at}: {type(error).__name__}: {error}"
        )


class TamperedError(GridkitError):
    """A store's records fail their integrity check: an audit chain with a broken link (exit
    status 1, as the data, not the command, is wrong)."""

    exit_code = 1


class ExchangeUnreachable(GridkitError):
    """The exchange could not be reached (or refused the API keys) when a paper or live run
    started: nothing was sent. Exit status 3, so a supervisor can tell it from bad input."""

    exit_code = 3
