"""Pull and push progress: a bar per layer on a terminal, Docker's plain lines otherwise.

Owns: how layer events ("layer", id, status, current, total) look. On a terminal, rich bars
redrawn by the caller's events (auto_refresh off: rich's refresh thread would break the
fork-before-any-thread rule while helpers start); elsewhere one line per layer per state
change, as `docker pull` prints into a pipe.
Must not: be imported on the `run` path unless an image is actually pulled.
"""

import time

# statuses worth a plain line; "Downloading"/"Pushing" ticks are not
_PLAIN = ("Already exists", "Pulling fs layer", "Pull complete", "Layer already exists",
          "Mounted from", "Pushed", "Preparing", "Waiting")


class PlainLayers:
    def __init__(self, out):
        self.out = out
        self._last = {}

    def __call__(self, event, **fields):
        if event != "layer":
            return
        status = fields["status"]
        if self._last.get(fields["id"]) == status or not status.startswith(_PLAIN):
            return
        self._last[fields["id"]] = status
        self.out.write("%s: %s\n" % (fields["id"], status))
        self.out.flush()

    def line(self, text):
        self.out.write(text + "\n")
        self.out.flush()

    def close(self):
        pass


class RichLayers:
    def __init__(self, out):
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn)
        self.console = Console(file=out, highlight=False)
        self.progress = Progress(TextColumn("{task.fields[layer]}"),
                                 TextColumn("{task.description:<18}"), BarColumn(),
                                 DownloadColumn(), console=self.console, auto_refresh=False,
                                 transient=False)
        self.tasks = {}
        self._drawn = 0.0
        self.progress.start()

    def __call__(self, event, **fields):
        if event != "layer":
            return
        layer = fields["id"]
        task = self.tasks.get(layer)
        total = fields.get("total") or None
        if task is None:
            task = self.progress.add_task(fields["status"], total=total, layer=layer)
            self.tasks[layer] = task
        self.progress.update(task, description=fields["status"],
                             completed=fields.get("current") or 0, total=total)
        now = time.monotonic()
        if now - self._drawn > 0.1 or fields["status"] != "Downloading":
            self._drawn = now
            self.progress.refresh()

    def line(self, text):
        self.progress.console.print(text, markup=False)

    def close(self):
        self.progress.refresh()
        self.progress.stop()


def layers_display(out, quiet=False):
    """The display for out (a text stream): rich bars on a terminal, plain lines otherwise,
    nothing when quiet."""
    if quiet:
        return None
    if out.isatty():
        return RichLayers(out)
    return PlainLayers(out)
