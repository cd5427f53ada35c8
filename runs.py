"""What a run is on disk, and how every tool reads and writes it. The ground floor: torch and the standard library.

A run folder (train.py --out) holds:
    ckpt.pt         one plain dict of tensors and numbers (read with `load_plain`)
    metrics.jsonl   one JSON object per logged step (read with `read_metrics`)
    loss.png        the loss curve
    .lock           while a process trains into the folder: its pid and host (`RunLock`)

Three rules keep a run folder safe, and every tool follows them through this file:
1. Every file is written whole or not at all (`write_atomic`): a temporary file of this writer's own beside the target,
   renamed over it. A crash or a full disk leaves the previous file as it was.
2. A fresh run never starts in a folder that holds a run (`check_run_folder`): the user continues it (--resume) or
   picks another folder; nothing in the old one changes.
3. One process at a time trains into a folder (`RunLock`); a lock left by a killed process is taken over.

It also holds the small helpers every command line shares: the one-line error (`fail`, `first_line`) and the typed
value of a `key=value` option (`parse_value`, for train.py's --set and the toy worlds' options).
"""
import json
import os
import re
import socket
import sys
import tempfile
import time

import torch

CKPT_NAME = "ckpt.pt"
METRICS_NAME = "metrics.jsonl"
LOCK_NAME = ".lock"
RUN_FILES = (CKPT_NAME, METRICS_NAME)   # a folder holding either of these holds a run


# ----------------------------------------------------------------------------
# one-line errors


def first_line(err):
    """The first line of an exception's message (torch and ffmpeg errors run to pages; the first line says what went
    wrong), or its type's name."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def fail(message, code=2):
    """End a command with one `error:` line on stderr (exit 2: bad input, as argparse's own errors)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def parse_value(key, text, like):
    """`text` as the type of `like`, the field's current value (bool, int, float, str, or a comma-separated tuple of
    those). A ValueError naming the key otherwise."""
    if isinstance(like, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} expects true or false; got {text!r}")
    if isinstance(like, tuple):
        parts = [s.strip() for s in text.strip("()[] ").split(",") if s.strip()]
        return tuple(parse_value(key, s, like[0] if like else "") for s in parts)
    if isinstance(like, (int, float)):
        try:
            return type(like)(text)
        except ValueError:
            raise ValueError(f"{key} expects {type(like).__name__}; got {text!r}") from None
    return text


# ----------------------------------------------------------------------------
# reading: checkpoints and metrics


def load_plain(path):
    """torch.load(path) with weights_only=True: a dict of tensors and numbers, or a one-line error naming the path.
    A file that would run code when unpickled is refused, without torch's advice to load it unsafely. Every
    checkpoint read in the project goes through here."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or corrupt file fails inside the zip/pickle reader
        text = str(e)
        asks = re.search(r"GLOBAL\s+([\w.]+)", text)   # a pickle that names code to import and call
        if asks:   # torch's advice here (weights_only=False) would run the file's code
            raise ValueError(f"{path}: refused: this file is not a plain checkpoint of tensors and numbers "
                             f"(it asks to load {asks.group(1)}); it may be unsafe, and this project never "
                             f"loads such files") from None
        lines = [line for line in text.strip().splitlines() if line.strip() and "weights_only" not in line]
        reason = (lines or [type(e).__name__])[0]
        raise ValueError(f"{path} is not a readable checkpoint (truncated or corrupt?): {reason}") from None


def read_metrics(path, up_to=None, warn=None):
    """The lines of metrics.jsonl (with step <= up_to, if given), as text. A line that does not parse (a crash
    mid-append leaves half a line) is dropped, and `warn` (a print function) told so."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                step = json.loads(line)["step"] if line.strip() else None
            except (ValueError, KeyError, TypeError):
                if warn:
                    warn(f"warning: {path} line {n} is not a metrics row (cut off by a crash?); dropped")
                continue
            if step is not None and (up_to is None or step <= up_to):
                rows.append(line if line.endswith("\n") else line + "\n")
    return rows


# ----------------------------------------------------------------------------
# writing: whole or not at all


def write_atomic(path, content):
    """Write `content` (str, bytes, or a function that writes a file given its path, e.g. torch.save's) to a temporary
    file of this writer's own beside `path`, then rename it over `path`. A crash, a signal or a full disk mid-write
    leaves the previous file whole and no temporary behind; two writers never share a temporary. Raises OSError
    with one line saying what is kept."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)   # as open() would have made it (mkstemp's file is private)
        with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as f:
            if isinstance(content, (str, bytes)):
                f.write(content)
        if callable(content):
            content(tmp)
        os.replace(tmp, path)
    except BaseException as e:   # a signal too: never leave the temporary behind
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, (OSError, RuntimeError)):   # a full disk surfaces from torch's zip writer as RuntimeError
            kept = "the previous one is kept" if os.path.exists(path) else "nothing was written"
            raise OSError(f"could not write {path} ({first_line(e)}); {kept}") from None
        raise


# ----------------------------------------------------------------------------
# run folders: checked before any work, locked while a run writes


def check_out_folder(path, flag="--out"):
    """A one-line reason why `path` cannot be an output folder (it is a file, or a file stands where one of its
    parents should be), or None. Tools call this before any work, so a bad --out never costs a run."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{flag} {path} is a file, not a folder; give a folder"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{flag} {path}: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK):
        return f"{flag} {path}: {parent} is not writable"
    return None


def holds_run(folder):
    """True when `folder` holds a run's checkpoint or metrics."""
    return any(os.path.lexists(os.path.join(folder, name)) for name in RUN_FILES)


def check_run_folder(folder, resume, flag="--out"):
    """Why `folder` cannot take a fresh run (resume=False) or give one to continue (resume=True), or None."""
    reason = check_out_folder(folder, flag)
    if reason:
        return reason
    ckpt = os.path.join(folder, CKPT_NAME)
    if os.path.lexists(ckpt) and not os.path.isfile(ckpt):
        return f"{flag} {folder}: {ckpt} is not a file; move it away first"
    if not resume and holds_run(folder):
        return (f"{flag} {folder} already holds a run: continue it with --resume, or give another --out "
                f"(--overwrite moves the old run aside)")
    return None


def move_aside(folder):
    """Rename a run folder to FOLDER.old-TIMESTAMP (never deleted) -> the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = f"{folder.rstrip(os.sep)}.old-{stamp}", 1
    while os.path.lexists(target):
        n += 1
        target = f"{folder.rstrip(os.sep)}.old-{stamp}-{n}"
    os.rename(folder, target)
    return target


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, under another user
        return True
    return True


class RunLock:
    """`with RunLock(folder):` one process at a time writes a run folder. The lock is a file created exclusively
    (O_EXCL), holding its owner's pid and host. A lock whose process no longer runs on this host (a killed run) is
    stale and taken over; a live one is refused with a RuntimeError naming its process."""

    def __init__(self, folder, flag="--out"):
        self.path, self.flag, self.held = os.path.join(folder, LOCK_NAME), flag, False

    def acquire(self):
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and not _alive(owner["pid"]):
                    self._take_over(owner)
                    continue
                if not owner:   # being written by its owner this instant, or not a lock of ours
                    time.sleep(0.1)
                    owner = self.owner()
                raise RuntimeError(f"{self.flag} {os.path.dirname(self.path)} is in use by process "
                                   f"{owner.get('pid', '?')} on {owner.get('host', '?')} (since "
                                   f"{owner.get('since', '?')}); wait for it to end, or give another {self.flag}")
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me) + "\n")
            self.held = True
            return self
        raise RuntimeError(f"{self.flag} {os.path.dirname(self.path)}: could not take its lock {self.path}")

    def owner(self):
        return self.owner_of(self.path)

    def _take_over(self, owner):
        # rename the stale lock to a name of our own first: of two processes taking it over at once, one rename
        # succeeds and the other finds the lock gone (and then races fairly on O_EXCL)
        mine = f"{self.path}.stale-{os.getpid()}"
        try:
            os.rename(self.path, mine)
        except FileNotFoundError:
            return
        if self.owner_of(mine) != owner:   # not the lock we judged stale: put it back for its owner
            os.rename(mine, self.path)
            return
        os.remove(mine)
        print(f"note: took over the lock of process {owner.get('pid')}, which no longer runs", file=sys.stderr)

    @staticmethod
    def owner_of(path):
        try:
            with open(path) as f:
                return json.loads(f.read() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self):
        if self.held and self.owner().get("pid") == os.getpid():
            os.remove(self.path)
        self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
