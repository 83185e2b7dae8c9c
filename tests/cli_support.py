"""Support for CLI tests: the one error line a failing command must print."""
from rnnvis.cli import main


def cli_error(capsys, *args):
    """The one stderr line of a CLI command that must fail with status 2."""
    code = main(list(args))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rnnvis: error: ") and " — " in lines[0], err
    return lines[0]
