#!/usr/bin/env python3
"""Keeps docs/guardarena.1 (the launcher's man page) in step with the code.

The RUNTIME OPTIONS section, between the roff comments
    .\\" options-table:begin   and   .\\" options-table:end
is generated from the option table (allocator/options/options.inc), read
through `guardarena_options_doc --help-text`; the rest of the page is written
by hand.

  gen-man-page.py --options-doc build/allocator/guardarena_options_doc [--launcher ...] docs/guardarena.1
      rewrites the generated section (and, given the launcher, the version in
      .TH) in place (scripts/update-options-docs does this);
  gen-man-page.py --check --options-doc ... [--launcher build/preload/guardarena] docs/guardarena.1
      fails when the section or the version is stale, or when a flag of
      `guardarena --help` is missing from the page (the docs.man_page CTest test).
"""
import argparse
import difflib
import re
import subprocess
import sys

BEGIN = '.\\" options-table:begin\n'
END = '.\\" options-table:end\n'


def roff_text(s):
    """Escapes free text for roff: backslashes, and a leading . or '."""
    s = s.replace('\\', '\\e')
    if s.startswith(('.', "'")):
        s = '\\&' + s
    return s


def roff_word(s):
    """A literal token (option name, value): hyphens are real minus signs."""
    return roff_text(s).replace('-', '\\-')


def parse_help_text(text):
    """[(name, default, accepted, help)] from `guardarena_options_doc --help-text`."""
    rows = []
    lines = text.splitlines()
    head = re.compile(r'^  ([a-z_0-9]+)=(.*?)  \[(.*)\]$')
    i = 0
    while i < len(lines):
        m = head.match(lines[i])
        if m:
            help_lines = []
            i += 1
            while i < len(lines) and lines[i].startswith('      '):
                help_lines.append(lines[i].strip())
                i += 1
            rows.append((m.group(1), m.group(2), m.group(3), ' '.join(help_lines)))
        else:
            i += 1
    if not rows:
        sys.exit('gen-man-page: no options found in the --help-text output')
    return rows


def generate(rows):
    out = []
    for name, default, accepted, help_text in rows:
        shown = default if default != '' else '""'
        out.append('.TP\n')
        out.append('\\fB%s\\fR \\(em \\fI%s\\fR; default \\fB%s\\fR\n'
                   % (roff_word(name), roff_text(accepted), roff_word(shown)))
        out.append(roff_text(help_text) + '\n')
    return ''.join(out)


def plain(roff):
    """Roff source as a reader sees it, roughly: for searching flag names."""
    s = re.sub(r'\\f[BIRP]', '', roff)
    s = s.replace('\\-', '-').replace('\\e', '\\').replace('\\&', '')
    return s


def launcher_flags(launcher):
    text = subprocess.run([launcher, '--help'], check=True, capture_output=True, text=True).stdout
    section = text.split('Launcher options:', 1)[-1].split('\n\n', 1)[0]
    flags = set(re.findall(r'(?<![\w-])(--[a-z][a-z-]*)', section))
    flags.discard('--name')  # the --NAME=VALUE placeholder
    return sorted(flags)


TH = re.compile(r'^(\.TH GUARDARENA 1 "[^"]*" "guardarena )([^"]*)(".*)$', re.M)


def launcher_version(launcher):
    out = subprocess.run([launcher, '--version'], check=True, capture_output=True, text=True).stdout
    return out.split()[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--options-doc', required=True, help='the guardarena_options_doc tool')
    ap.add_argument('--launcher', help='the guardarena launcher, to check its flags are documented')
    ap.add_argument('--check', action='store_true', help='check instead of rewriting')
    ap.add_argument('page')
    args = ap.parse_args()

    help_text = subprocess.run([args.options_doc, '--help-text'], check=True,
                               capture_output=True, text=True).stdout
    section = generate(parse_help_text(help_text))
    page = open(args.page).read()
    if BEGIN not in page or END not in page:
        sys.exit('gen-man-page: %s lacks the options-table markers' % args.page)
    b = page.index(BEGIN) + len(BEGIN)
    e = page.index(END)
    current = page[b:e]

    version = launcher_version(args.launcher) if args.launcher else None
    th = TH.search(page)
    if th is None:
        sys.exit('gen-man-page: %s lacks the .TH GUARDARENA 1 "date" "guardarena VERSION" line' % args.page)

    if not args.check:
        new = page[:b] + section + page[e:]
        if version is not None:
            new = TH.sub(lambda m: m.group(1) + version + m.group(3), new)
        if new != page:
            with open(args.page, 'w') as f:
                f.write(new)
            print('gen-man-page: updated %s' % args.page)
        return 0

    ok = True
    if current != section:
        ok = False
        sys.stderr.write('%s: the RUNTIME OPTIONS section does not match the option table.\n'
                         'Regenerate it with scripts/update-options-docs. Difference:\n' % args.page)
        sys.stderr.writelines(difflib.unified_diff(current.splitlines(True), section.splitlines(True),
                                                   'in the page', 'from the table'))
    if version is not None and th.group(2) != version:
        ok = False
        sys.stderr.write('%s: .TH says guardarena %s, the launcher %s (run scripts/update-options-docs)\n'
                         % (args.page, th.group(2), version))
    if args.launcher:
        text = plain(page)
        for flag in launcher_flags(args.launcher):
            if flag not in text:
                ok = False
                sys.stderr.write('%s: launcher flag %s (from --help) is not documented\n' % (args.page, flag))
    if ok:
        print('gen-man-page: %s matches the option table%s' % (args.page, ' and the launcher' if args.launcher else ''))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
