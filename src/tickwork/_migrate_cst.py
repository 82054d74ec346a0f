"""The libcst rewriter behind :mod:`tickwork.migrate` (imported only when libcst is installed)."""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import (
    MetadataWrapper,
    PositionProvider,
    QualifiedNameProvider,
    QualifiedNameSource,
)

import tickwork
from tickwork.migrate import (
    BEHAVIOUR_WARNINGS,
    NEW_PACKAGE,
    OLD_PACKAGE,
    PROVIDED_MODULES,
    BehaviourWarning,
    Change,
    Note,
    ParseError,
    Result,
)

_BY_NAME: dict[str, BehaviourWarning] = {
    f"{OLD_PACKAGE}.{name}": w for w in BEHAVIOUR_WARNINGS for name in w.names}
_BY_METHOD: dict[str, BehaviourWarning] = {
    method: w for w in BEHAVIOUR_WARNINGS for method in w.methods}


def _oslo_submodule(dotted: str | None) -> str | None:
    """``loopingcall`` for ``oslo_service.loopingcall[.X...]``, ``""`` for ``oslo_service``."""
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    if head != OLD_PACKAGE:
        return None
    return rest.partition(".")[0]


def _renamed(dotted: str) -> str:
    return NEW_PACKAGE + dotted[len(OLD_PACKAGE):]


_TICKWORK_DIR = os.path.dirname(os.path.abspath(tickwork.__file__))


def _tickwork_lacks(dotted: str) -> bool:
    """Whether the module ``tickwork.a.b.c`` for ``oslo_service.a.b.c`` is missing.

    Only modules below the provided ones are checked (``backend._common``):
    the provided modules themselves are tickwork's promise.
    """
    parts = dotted.split(".")[1:]
    if len(parts) < 2:
        return False
    path = os.path.join(_TICKWORK_DIR, *parts)
    return not (os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__init__.py")))


def _dotted_value(value: str) -> bool:
    parts = value.split(".")
    return len(parts) > 1 and all(part.isidentifier() for part in parts)


class _Scan(cst.CSTVisitor):
    """Which provided modules a file imports, and whether ``tickwork`` will be bound."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.plain_import = False

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            dotted = get_full_name_for_node(alias.name)
            sub = _oslo_submodule(dotted)
            if sub in PROVIDED_MODULES and dotted and not _tickwork_lacks(dotted):
                self.used.add(sub)
                if alias.asname is None:
                    self.plain_import = True

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        sub = _oslo_submodule(get_full_name_for_node(node.module))
        if sub in PROVIDED_MODULES:
            self.used.add(sub)
        elif sub == "" and not isinstance(node.names, cst.ImportStar):
            self.used.update(a.name.value for a in node.names
                             if isinstance(a.name, cst.Name) and a.name.value in PROVIDED_MODULES)


class _Rewriter(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def __init__(self, scan: _Scan) -> None:
        super().__init__()
        self.changes: list[Change] = []
        self.warnings: list[Note] = []
        self.left: list[Note] = []
        self._scan = scan
        self._in_import = 0
        # id() of the first statement of each split ``from oslo_service import a, b``
        self._splits: set[int] = set()

    # -- bookkeeping

    def _line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def _change(self, original: cst.CSTNode, old: str, new: str) -> None:
        self.changes.append(Change(self._line(original), old, new))

    def _leave(self, original: cst.CSTNode, message: str) -> None:
        self.left.append(Note(self._line(original), message))

    # -- imports

    def visit_Import(self, node: cst.Import) -> None:
        self._in_import += 1

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self._in_import += 1

    def leave_Import(self, original_node: cst.Import, updated_node: cst.Import) -> cst.Import:
        self._in_import -= 1
        names = []
        for alias in updated_node.names:
            dotted = get_full_name_for_node(alias.name)
            sub = _oslo_submodule(dotted)
            if sub in PROVIDED_MODULES and dotted is not None and _tickwork_lacks(dotted):
                self._leave(original_node, f"{dotted[len(OLD_PACKAGE) + 1:]} "
                                           f"(tickwork has no {_renamed(dotted)})")
            elif sub in PROVIDED_MODULES and dotted is not None:
                new = _renamed(dotted)
                alias = alias.with_changes(name=cst.parse_expression(new))
                self._change(original_node, f"import {dotted}", f"import {new}")
            elif sub is not None:
                self._leave(original_node, sub or f"import {OLD_PACKAGE}")
            names.append(alias)
        return updated_node.with_changes(names=names)

    def leave_ImportFrom(
        self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom,
    ) -> cst.ImportFrom | cst.FlattenSentinel[cst.BaseSmallStatement]:
        self._in_import -= 1
        if updated_node.relative or updated_node.module is None:
            return updated_node
        dotted = get_full_name_for_node(updated_node.module)
        sub = _oslo_submodule(dotted)
        if sub is None or dotted is None:
            return updated_node
        if sub:
            if sub not in PROVIDED_MODULES:
                self._leave(original_node, dotted[len(OLD_PACKAGE) + 1:])
                return updated_node
            if _tickwork_lacks(dotted):
                self._leave(original_node, f"{dotted[len(OLD_PACKAGE) + 1:]} "
                                           f"(tickwork has no {_renamed(dotted)})")
                return updated_node
            new = _renamed(dotted)
            self._change(original_node, f"from {dotted} import", f"from {new} import")
            return updated_node.with_changes(module=cst.parse_expression(new))
        # from oslo_service import a, b as c, ...
        if isinstance(updated_node.names, cst.ImportStar):
            self._leave(original_node, f"* (from {OLD_PACKAGE} import *)")
            return updated_node
        aliases = list(updated_node.names)
        provided = [a for a in aliases if get_full_name_for_node(a.name) in PROVIDED_MODULES]
        kept = [a for a in aliases if get_full_name_for_node(a.name) not in PROVIDED_MODULES]
        for alias in kept:
            self._leave(original_node, get_full_name_for_node(alias.name) or "?")
        if not provided:
            return updated_node
        moved = ", ".join(get_full_name_for_node(a.name) or "?" for a in provided)
        self._change(original_node, f"from {OLD_PACKAGE} import {moved}",
                     f"from {NEW_PACKAGE} import {moved}")
        if not kept:
            return updated_node.with_changes(module=cst.Name(NEW_PACKAGE))

        closing = aliases[-1].comma

        def group(names: list[cst.ImportAlias]) -> list[cst.ImportAlias]:
            last = names[-1]
            if not updated_node.lpar:
                return names[:-1] + [last.with_changes(comma=cst.MaybeSentinel.DEFAULT)]
            # In parentheses the comma stays (it may hold a comment); the closing
            # parenthesis keeps its indentation.
            comma = last.comma
            if (last is not aliases[-1] and isinstance(comma, cst.Comma)
                    and isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace)
                    and isinstance(closing, cst.Comma)
                    and isinstance(closing.whitespace_after, cst.ParenthesizedWhitespace)):
                comma = comma.with_changes(whitespace_after=comma.whitespace_after.with_changes(
                    last_line=closing.whitespace_after.last_line))
                last = last.with_changes(comma=comma)
            return names[:-1] + [last]

        old = updated_node.with_changes(names=group(kept), semicolon=cst.Semicolon(
            whitespace_after=cst.SimpleWhitespace(" ")))
        new_import = updated_node.with_changes(module=cst.Name(NEW_PACKAGE),
                                               names=group(provided))
        self._splits.add(id(old))
        return cst.FlattenSentinel([old, new_import])

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine,
    ) -> cst.SimpleStatementLine | cst.FlattenSentinel[cst.SimpleStatementLine]:
        body = updated_node.body
        if len(body) != 2 or id(body[0]) not in self._splits:
            return updated_node
        # A split import alone on its line: one line each.
        alone = body[0].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        first = updated_node.with_changes(body=[alone])
        second = updated_node.with_changes(body=[body[1]], leading_lines=[])
        return cst.FlattenSentinel([first, second])

    # -- uses after ``import oslo_service.<module>``

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute,
    ) -> cst.Attribute:
        value = original_node.value
        if (self._in_import or not isinstance(value, cst.Name) or value.value != OLD_PACKAGE
                or original_node.attr.value not in PROVIDED_MODULES):
            return updated_node
        names = self.get_metadata(QualifiedNameProvider, value, set())
        if not any(q.source == QualifiedNameSource.IMPORT and q.name == OLD_PACKAGE
                   for q in names):
            return updated_node
        sub = original_node.attr.value
        if not self._scan.plain_import:
            self._leave(original_node, f"{sub} (used through 'import {OLD_PACKAGE}': "
                                       f"import {NEW_PACKAGE}.{sub} and rewrite by hand)")
            return updated_node
        self._change(original_node, f"{OLD_PACKAGE}.{sub}", f"{NEW_PACKAGE}.{sub}")
        return updated_node.with_changes(value=cst.Name(NEW_PACKAGE))

    # -- string literals naming a module

    def _rewrite_strings(
        self, original: cst.BaseString, parts: Sequence[cst.SimpleString],
    ) -> cst.SimpleString | None:
        """The new first part when the strings together name a provided module's object."""
        if any("b" in p.prefix.lower() or p.raw_value != p.evaluated_value for p in parts):
            return None
        value = "".join(p.raw_value for p in parts)
        if not _dotted_value(value):
            return None
        sub = _oslo_submodule(value)
        if sub is None:
            return None
        first = parts[0]
        if sub not in PROVIDED_MODULES:
            self._leave(original, f"{sub} (in {value!r})")
            return None
        if not first.raw_value.startswith(OLD_PACKAGE):
            return None
        quote = first.quote
        new_raw = NEW_PACKAGE + first.raw_value[len(OLD_PACKAGE):]
        self._change(original, value, _renamed(value))
        return first.with_changes(value=f"{first.prefix}{quote}{new_raw}{quote}")

    def leave_SimpleString(
        self, original_node: cst.SimpleString, updated_node: cst.SimpleString,
    ) -> cst.SimpleString:
        return self._rewrite_strings(original_node, [original_node]) or updated_node

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> bool:
        return False  # handled as a whole in leave_ConcatenatedString

    def leave_ConcatenatedString(
        self, original_node: cst.ConcatenatedString, updated_node: cst.ConcatenatedString,
    ) -> cst.ConcatenatedString:
        parts: list[cst.SimpleString] = []
        node: cst.BaseExpression = original_node
        while isinstance(node, cst.ConcatenatedString):
            if not isinstance(node.left, cst.SimpleString):
                return updated_node
            parts.append(node.left)
            node = node.right
        if not isinstance(node, cst.SimpleString):
            return updated_node
        parts.append(node)
        first = self._rewrite_strings(original_node, parts)
        return updated_node if first is None else updated_node.with_changes(left=first)

    # -- behaviour warnings

    def _warn(self, node: cst.CSTNode, warning: BehaviourWarning) -> None:
        self.warnings.append(Note(self._line(node), warning.text))

    def visit_Name(self, node: cst.Name) -> None:
        if not self._in_import:
            self._warn_qualified(node)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if self._in_import:
            return
        self._warn_qualified(node)
        method = _BY_METHOD.get(node.attr.value)
        if method is not None and method.module in self._scan.used:
            self._warn(node, method)

    def _warn_qualified(self, node: cst.Name | cst.Attribute) -> None:
        for qualified in self.get_metadata(QualifiedNameProvider, node, set()):
            warning = _BY_NAME.get(qualified.name)
            if warning is not None and qualified.source == QualifiedNameSource.IMPORT:
                self._warn(node, warning)
                return


def rewrite(source: str | bytes, filename: str) -> Result:
    """See :func:`tickwork.migrate.rewrite_source`."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        # Python's own parser says where the mistake is more precisely.
        try:
            compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError as syntax:
            raise ParseError(f"{filename}:{syntax.lineno}:{syntax.offset}: cannot parse: "
                             f"{syntax.msg}") from None
        except ValueError:
            pass
        raise ParseError(f"{filename}:{exc.raw_line}:{exc.raw_column + 1}: cannot parse: "
                         f"{exc.message}") from None
    except (UnicodeDecodeError, LookupError, SyntaxError) as exc:
        raise ParseError(f"{filename}: cannot read: {exc}") from None
    scan = _Scan()
    module.visit(scan)
    rewriter = _Rewriter(scan)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    new_module = wrapper.visit(rewriter)
    rewriter.warnings.sort(key=lambda n: n.line)
    rewriter.left.sort(key=lambda n: n.line)
    rewriter.changes.sort(key=lambda c: c.line)
    return Result(filename=filename, original=module.code, code=new_module.code,
                  encoding=module.encoding, changes=rewriter.changes,
                  warnings=rewriter.warnings, left=rewriter.left)
