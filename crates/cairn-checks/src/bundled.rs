//! The bundled `datadog_checks` package (from `python/`), compiled into the binary and served
//! by an import finder placed after every path finder, so an installed `datadog-checks-base`
//! wins over it.

macro_rules! bundled {
    ($module:literal, $pkg:literal, $path:literal) => {
        (
            $module,
            $pkg,
            $path,
            include_str!(concat!("../../../python/", $path)),
        )
    };
}

/// Module name, whether it is a package, path under `python/`, source.
pub const MODULES: &[(&str, bool, &str, &str)] = &[
    bundled!("datadog_checks", true, "datadog_checks/__init__.py"),
    bundled!(
        "datadog_checks.base",
        true,
        "datadog_checks/base/__init__.py"
    ),
    bundled!(
        "datadog_checks.base.config",
        false,
        "datadog_checks/base/config.py"
    ),
    bundled!(
        "datadog_checks.base.errors",
        false,
        "datadog_checks/base/errors.py"
    ),
    bundled!(
        "datadog_checks.base.log",
        false,
        "datadog_checks/base/log.py"
    ),
    bundled!(
        "datadog_checks.base.checks",
        true,
        "datadog_checks/base/checks/__init__.py"
    ),
    bundled!(
        "datadog_checks.base.checks.base",
        false,
        "datadog_checks/base/checks/base.py"
    ),
    bundled!(
        "datadog_checks.checks",
        true,
        "datadog_checks/checks/__init__.py"
    ),
];

/// Installs the finder. Runs once, right after the interpreter starts.
pub const BOOTSTRAP: &str = r#"
import sys
import importlib.abc
import importlib.util


class _CairnBundledLoader(importlib.abc.InspectLoader):
    def __init__(self, name, path, source):
        self.name, self.path, self.source = name, path, source

    def get_source(self, fullname):
        return self.source

    def get_filename(self, fullname):
        return self.path

    def exec_module(self, module):
        module.__file__ = self.path
        exec(compile(self.source, self.path, 'exec'), module.__dict__)


class CairnBundledFinder:
    """Serves the copy of datadog_checks bundled in the cairn binary."""

    def __init__(self, modules):
        self.modules = {name: (pkg, path, src) for name, pkg, path, src in modules}

    def find_spec(self, fullname, path=None, target=None):
        entry = self.modules.get(fullname)
        if entry is None:
            return None
        pkg, path, src = entry
        origin = '<cairn-bundled>/' + path
        loader = _CairnBundledLoader(fullname, origin, src)
        spec = importlib.util.spec_from_loader(fullname, loader, origin=origin, is_package=pkg)
        spec.has_location = True
        return spec


def install(modules):
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != 'CairnBundledFinder']
    sys.meta_path.append(CairnBundledFinder(modules))
"#;

/// Host-side helpers, run inside the interpreter.
pub const HELPERS: &str = r#"
import importlib
import sys


def import_check_module(name):
    """Imports the module of check `name`: datadog_checks.<name>, else <name>. Returns None
    when neither exists; lets every other error through."""
    candidates = [name] if name in ('base', 'checks') else ['datadog_checks.' + name, name]
    for modname in candidates:
        try:
            return importlib.import_module(modname)
        except ModuleNotFoundError as e:
            # Only "this very module is missing" means try the next; a missing dependency
            # inside the check is the check's error.
            if e.name is not None and modname.startswith(e.name) and (modname + '.').startswith(e.name + '.'):
                continue
            raise
    return None


def find_check_class(module):
    """The first class in dir() order that subclasses AgentCheck, is not AgentCheck and has
    no subclass of its own in the module."""
    from datadog_checks.base import AgentCheck

    classes = []
    for attr in dir(module):
        value = getattr(module, attr)
        if isinstance(value, type) and issubclass(value, AgentCheck) and value is not AgentCheck:
            classes.append(value)
    for cls in classes:
        if not any(other is not cls and issubclass(other, cls) for other in classes):
            return cls
    return None


def describe_exception(e):
    """One line: 'ExcType: message'."""
    text = str(e).strip().splitlines()
    return type(e).__name__ + (': ' + text[0] if text else '')
"#;
