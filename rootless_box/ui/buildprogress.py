"""The build's progress on a terminal: styled step lines and each step's time, with rich.

Owns: how steps look on a tty (the plain `STEP n/N: ...` lines stay the format when output is
not a terminal or with --progress=plain). A RUN step's own output goes straight to the
terminal between the lines, so there is no live panel to fight with it.
Must not: be imported unless a terminal display was asked for (rich costs ~50 ms).
"""

import time


class RichSteps:
    def __init__(self):
        from rich.console import Console
        self.console = Console(highlight=False)
        self.errors = Console(highlight=False, stderr=True)
        self.started = None

    def __call__(self, kind, text):
        now = time.monotonic()
        if kind == "step":
            number, _, rest = text.partition(": ")
            self.console.print("[bold cyan]%s[/]: %s" % (number, _escape(rest)))
            self.started = now
        elif kind == "cached":
            self.console.print("[green]%s[/]" % _escape(text))
            self.started = None
        elif kind == "done":
            self.console.print("[dim]%s  %.1fs[/]" % (_escape(text), now - (self.started or now)))
            self.started = None
        elif kind == "warning":
            self.errors.print("[yellow]rootless-box: warning:[/] %s" % _escape(text))
        else:
            self.console.print(_escape(text))


def _escape(text):
    from rich.markup import escape
    return escape(text)
