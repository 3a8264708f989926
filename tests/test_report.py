"""The reporters' progress bars: one bar per run, which a nested stretch shares."""

from clipig_gallery.app.notebook import NotebookReporter
from clipig_gallery.renderer.execution.report import BarReporter
from clipig_gallery.renderer.terminal import ClickReporter


class Bar:
    def __init__(self, total, label, unit):
        self.total, self.label, self.unit, self.n, self.closed = total, label, unit, 0, False

    def update(self, n):
        self.n += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True


class Recording(BarReporter):
    def __init__(self):
        super().__init__(lambda _line: None)
        self.bars = []

    def new_bar(self, total, label, unit):
        self.bars.append(Bar(total, label, unit))
        return self.bars[-1]


def test_a_nested_stretch_counts_on_the_outer_bar():
    reporter = Recording()
    reporter.advance(5)  # no bar open: nothing to count on, and no error
    with reporter.progress(10, "render"):
        reporter.advance(2)
        with reporter.progress(4, "best of", unit="run"):
            reporter.advance(3)
        reporter.advance(1)
    assert [(b.total, b.label, b.unit, b.n, b.closed) for b in reporter.bars] == [
        (10, "render", "image", 6, True)]
    assert reporter.bar is None


def test_the_bar_is_closed_when_the_stretch_fails():
    reporter = Recording()
    try:
        with reporter.progress(3, "render"):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert reporter.bars[0].closed and reporter.bar is None
    with reporter.progress(2, "again"):  # a new stretch opens a new bar
        pass
    assert len(reporter.bars) == 2


def test_the_notebook_bar_counts_and_calls_back_after_each_batch(capsys):
    reporter = NotebookReporter()
    calls = []
    reporter.on_advance = lambda: calls.append(reporter.bar.n)
    with reporter.progress(4, "render"):
        reporter.advance(1)
        with reporter.progress(2, "inner"):
            reporter.advance(2)
    assert calls == [1, 3]
    assert reporter.bar is None
    assert "render" in capsys.readouterr().err  # outside a notebook, tqdm draws on stderr


def test_the_command_line_says_lines_above_its_bar(capsys):
    reporter = ClickReporter()
    with reporter.progress(2, "render"):
        reporter.say("batch of 2")
        reporter.advance(2)
    reporter.note("on the CPU")
    out, err = capsys.readouterr()
    assert out == "batch of 2\n"
    assert "on the CPU" in err and reporter.bar is None
