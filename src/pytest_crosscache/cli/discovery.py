"""Finding a project's rootdir, configuration file and ``cache_dir`` without pytest.

The ``crosscache`` command must open the cache directory pytest would use,
but starting pytest just to ask it costs more than the command's whole
job.  This module follows the rules pytest documents for locating the
rootdir and the configuration file (see "rootdir" in pytest's reference)
for the case the command cares about: pytest run with no test paths, or
with the path given to ``--rootdir``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from pytest_crosscache.fs.cachedir import default_cache_dir
from pytest_crosscache.fs.cachedir import resolve_cache_dir

#: Raw settings of a configuration file, by ini name.
Settings = dict[str, object]


@functools.cache
def _pytest_version() -> tuple[int, int]:
    """(major, minor) of the installed pytest, from its metadata.

    Asked of the installed metadata so that pytest itself is not imported;
    an unknown version counts as the newest.
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        major, minor = version("pytest").split(".")[:2]
        return int(major), int(minor)
    except (PackageNotFoundError, ValueError):
        return (10**6, 0)


def _native_toml() -> bool:
    """Whether the installed pytest reads TOML natively (pytest 9 and later).

    pytest 9 added ``pytest.toml`` files and the ``[tool.pytest]`` and
    ``[pytest]`` tables; pytest 8.4 only knows ``[tool.pytest.ini_options]``.
    """
    return _pytest_version() >= (9, 0)


def _addopts_overrides_apply() -> bool:
    """Whether ``-o`` options in the ``addopts`` setting change settings.

    pytest before 9.1 reads them too late: only ``-o`` given on the command
    line or in ``PYTEST_ADDOPTS`` changes ``cache_dir`` and the like.
    """
    return _pytest_version() >= (9, 1)


class ConfigError(ValueError):
    """A configuration file cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Project:
    """Where a pytest project lives and what its configuration file says."""

    rootdir: Path
    #: The configuration file in use, or ``None`` when there is none.
    inifile: Path | None = None
    #: What the file says, with the ``-o`` overrides pytest would apply.
    settings: Settings = field(default_factory=dict)
    #: ``--cache-backend`` as given in ``PYTEST_ADDOPTS`` or ``addopts``.
    cache_backend: str | None = None

    def setting(self, name: str) -> str | None:
        """The string value of ini setting ``name``, or ``None`` when unset."""
        value = self.settings.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(
                f"{self.inifile}: config option {name!r} expects a string, "
                f"got {type(value).__name__}: {value!r}"
            )
        return value

    def cache_dir(self) -> Path:
        """The cache directory pytest would use for this project."""
        value = self.setting("cache_dir")
        return resolve_cache_dir(
            default_cache_dir() if value is None else value, self.rootdir
        )


def _read_toml(path: Path) -> dict[str, object]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - pytest itself depends on tomli there
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        document: dict[str, object] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return document


def _read_ini_section(path: Path, *names: str) -> tuple[str, Settings] | None:
    """The first of the sections ``names`` in an ini-style file, with its name."""
    # iniconfig, not configparser: it is the parser pytest reads these files
    # with, so continuation lines and comments mean the same to both.
    import iniconfig

    try:
        parsed = iniconfig.IniConfig(str(path))
    except iniconfig.ParseError as exc:
        raise ConfigError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for name in names:
        if name in parsed:
            return name, dict(parsed[name].items())
    return None


def _pytest_table(path: Path, document: dict[str, object]) -> Settings | None:
    table = document.get("pytest")
    if isinstance(table, dict):
        return dict(table)
    loose = [key for key, value in document.items() if not isinstance(value, dict)]
    if loose:
        raise ConfigError(
            f"{path}: pytest configuration must be under a [pytest] table "
            f"(found top-level options: {', '.join(loose)})"
        )
    return None


def _tool_pytest_tables(path: Path, document: dict[str, object]) -> Settings | None:
    tool = document.get("tool")
    table = tool.get("pytest") if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        return None
    native = {key: value for key, value in table.items() if key != "ini_options"}
    if not _native_toml():
        native = {}
    ini_options = table.get("ini_options")
    if native and ini_options is not None:
        raise ConfigError(
            f"{path}: cannot use both [tool.pytest] and [tool.pytest.ini_options]"
        )
    if native:
        return native
    if isinstance(ini_options, dict):
        # The ini flavour turns every scalar into its text, as an ini file would.
        return {
            key: value if isinstance(value, list) else str(value)
            for key, value in ini_options.items()
        }
    return None


def _load_pytest_toml(path: Path) -> Settings | None:
    return _pytest_table(path, _read_toml(path)) or {}


def _load_pytest_ini(path: Path) -> Settings | None:
    # A file named for pytest is its configuration even without a section.
    found = _read_ini_section(path, "pytest")
    return found[1] if found else {}


def _load_pyproject(path: Path) -> Settings | None:
    return _tool_pytest_tables(path, _read_toml(path))


def _load_tox_ini(path: Path) -> Settings | None:
    found = _read_ini_section(path, "pytest")
    return found[1] if found else None


def _load_setup_cfg(path: Path) -> Settings | None:
    found = _read_ini_section(path, "tool:pytest", "pytest")
    if found is None:
        return None
    section, settings = found
    if section == "pytest":
        raise ConfigError(
            f"{path}: a [pytest] section in setup.cfg is not supported, "
            "use [tool:pytest] instead"
        )
    return settings


def _load_other_toml(path: Path) -> Settings | None:
    document = _read_toml(path)
    tool = _tool_pytest_tables(path, document)
    if tool is None:
        return _pytest_table(path, document) if _native_toml() else None
    if "pytest" in document:
        raise ConfigError(
            f"{path}: cannot use both [pytest] and [tool.pytest] in one file"
        )
    return tool


Loader = Callable[[Path], "Settings | None"]

#: The files pytest looks for in each directory, the first one holding
#: configuration winning.  Order matters.
BY_NAME: dict[str, Loader] = {
    "pytest.toml": _load_pytest_toml,
    ".pytest.toml": _load_pytest_toml,
    "pytest.ini": _load_pytest_ini,
    ".pytest.ini": _load_pytest_ini,
    "pyproject.toml": _load_pyproject,
    "tox.ini": _load_tox_ini,
    "setup.cfg": _load_setup_cfg,
}

#: For files named with ``-c``/``--config-file`` that are none of the above.
BY_SUFFIX: dict[str, Loader] = {
    ".ini": _load_tox_ini,
    ".cfg": _load_setup_cfg,
    ".toml": _load_other_toml,
}


def _search(start: Path) -> tuple[Path, Settings] | None:
    """The nearest configuration file at or above ``start``, with its settings."""
    bare_pyproject: Path | None = None
    for base in (start, *start.parents):
        for name, load in BY_NAME.items():
            if name.endswith("pytest.toml") and not _native_toml():
                continue
            path = base / name
            if not path.is_file():
                continue
            settings = load(path)
            if settings is not None:
                return path, settings
            if name == "pyproject.toml" and bare_pyproject is None:
                bare_pyproject = path
    if bare_pyproject is not None:
        # A pyproject.toml without pytest settings still marks the rootdir.
        return bare_pyproject, {}
    return None


def _absolute(path: str | os.PathLike[str], base: Path) -> Path:
    return Path(os.path.normpath(base / os.path.expanduser(path)))


@dataclass(frozen=True)
class PytestArgs:
    """What a list of pytest arguments says about the cache.

    Only the options that move it are looked at: ``-o``/``--override-ini``,
    ``-c``/``--config-file``, ``--rootdir`` and ``--cache-backend``, in
    every spelling pytest accepts (``-o x=y``, ``-ox=y``,
    ``--override-ini=x=y``); the last one given wins, as with pytest.
    """

    overrides: tuple[tuple[str, str], ...] = ()
    config_file: str | None = None
    rootdir: str | None = None
    cache_backend: str | None = None

    @classmethod
    def parse(cls, tokens: list[str], source: str) -> PytestArgs:
        """Read ``tokens``; :class:`ConfigError` naming ``source`` if malformed."""
        found: dict[str, str] = {}
        overrides: list[tuple[str, str]] = []
        rest = iter(tokens)
        for token in rest:
            if token == "--":
                break
            name, value = token, None
            if token.startswith("--") and "=" in token:
                name, value = token.split("=", 1)
            elif token[:2] in ("-o", "-c") and len(token) > 2:
                name, value = token[:2], token[2:]
            option = _PYTEST_OPTIONS.get(name)
            if option is None:
                continue
            if value is None:
                value = next(rest, None)
                if value is None:
                    raise ConfigError(f"{source}: {name} expects a value")
            if option == "override":
                setting, sep, text = value.partition("=")
                if not sep:
                    raise ConfigError(
                        f"{source}: -o/--override-ini expects option=value "
                        f"style (got: {value!r})"
                    )
                overrides.append((setting, text))
            else:
                found[option] = value
        return cls(tuple(overrides), **found)

    @classmethod
    def of(cls, value: object, source: str) -> PytestArgs:
        """Read the arguments of an ``addopts``-like value: text or a list."""
        import shlex

        if value is None:
            return cls()
        if isinstance(value, str):
            try:
                tokens = shlex.split(value)
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        elif isinstance(value, list):
            tokens = [str(item) for item in value]
        else:
            raise ConfigError(
                f"{source}: expected text or a list of arguments, "
                f"got {type(value).__name__}"
            )
        return cls.parse(tokens, source)


#: The pytest options that move the cache, by spelling.
_PYTEST_OPTIONS = {
    "-o": "override",
    "--override-ini": "override",
    "-c": "config_file",
    "--config-file": "config_file",
    "--rootdir": "rootdir",
    "--cache-backend": "cache_backend",
}


def locate(
    cwd: Path,
    *,
    rootdir: str | None = None,
    config_file: str | None = None,
) -> Project:
    """Find the project pytest would see when run in ``cwd``, as it would be
    configured by the arguments pytest adds to its own.

    ``PYTEST_ADDOPTS`` comes first, as with pytest: its ``-c`` and
    ``--rootdir`` pick the configuration file (``rootdir`` and
    ``config_file`` given here win over them) and its ``-o`` options
    override settings, ``addopts`` included.  Then the ``addopts``
    setting: its ``--cache-backend`` counts (one in ``PYTEST_ADDOPTS``
    wins), and its ``-o`` options do too from pytest 9.1 on.

    :param rootdir: like pytest's ``--rootdir``; the configuration file is
        also searched from there, as ``pytest --rootdir DIR DIR`` does.
    :param config_file: like pytest's ``-c``/``--config-file``.
    :raises ConfigError: if a file or ``PYTEST_ADDOPTS`` is malformed or an
        argument names no usable path.
    """
    import dataclasses

    env = PytestArgs.of(os.environ.get("PYTEST_ADDOPTS") or None, "PYTEST_ADDOPTS")
    project = _locate_config(
        cwd,
        rootdir=rootdir or env.rootdir,
        config_file=config_file or env.config_file,
    )
    settings = {**project.settings, **dict(env.overrides)}
    ini = PytestArgs.of(
        settings.get("addopts"), f"{project.inifile}: the addopts setting"
    )
    if _addopts_overrides_apply():
        # Both lists count, the environment's last: it wins.
        settings.update(ini.overrides)
        settings.update(env.overrides)
    backend = env.cache_backend if env.cache_backend is not None else ini.cache_backend
    return dataclasses.replace(project, settings=settings, cache_backend=backend)


def _locate_config(
    cwd: Path,
    *,
    rootdir: str | None,
    config_file: str | None,
) -> Project:
    """The rootdir and configuration file pytest finds from ``cwd``."""
    root = _absolute(os.path.expandvars(rootdir), cwd) if rootdir else None
    if root is not None and not root.is_dir():
        raise ConfigError(f"directory {str(root)!r} not found (from --rootdir)")
    start = root or cwd
    if config_file:
        inifile = _absolute(config_file, cwd)
        if not inifile.exists():
            raise ConfigError(f"config file {str(inifile)!r} not found")
        if inifile.is_dir():
            raise ConfigError(f"config file {str(inifile)!r} is a directory")
        load = BY_NAME.get(inifile.name) or BY_SUFFIX.get(inifile.suffix)
        if not inifile.is_file():
            # /dev/null and the like: the way to ask for no configuration.
            return Project(start)
        if load is None:
            raise ConfigError(
                f"config file {str(inifile)!r} has an unsupported format; "
                f"use one of {', '.join(sorted(BY_SUFFIX))}"
            )
        return Project(root or inifile.parent, inifile, load(inifile) or {})
    found = _search(start)
    if found is not None:
        path, settings = found
        return Project(root or path.parent, path, settings)
    if root is None:
        # No configuration anywhere: a setup.py above marks the project.
        for base in (cwd, *cwd.parents):
            if (base / "setup.py").is_file():
                return Project(base)
    return Project(start)
